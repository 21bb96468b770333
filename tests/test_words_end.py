"""words_end: what a punctuating STT's transcript says about the end of the caller's turn."""

import pytest

from turns.words_end import WordsEnd, words_end


@pytest.mark.parametrize(
    "text",
    [
        "Hi, I'd like to book a table for",
        "I'd like the",
        "Can we make it seven and",
        "A table for two with",
        "I'm",  # a subject and its auxiliary: the verb is still to come
        "So it’s",  # the STT's typographic apostrophe
        "Yes, um",
        "A table for.",  # an STT's full stop does not finish "for"
    ],
)
def test_words_no_sentence_ends_on_are_unfinished(text):
    assert words_end(text, "en") == WordsEnd.UNFINISHED


@pytest.mark.parametrize(
    "text",
    [
        "Hi, I'd like to book a table for two tomorrow at seven.",
        "What time do you open on Saturday?",
        "Who is it for?",  # a question may end on a preposition
        "I'd like to.",  # "to", "in", "up": particles end sentences
        "Can I check in?",
        "Yes, that works!",
    ],
)
def test_a_punctuated_ending_on_any_other_word_is_a_sentence(text):
    assert words_end(text, "en") == WordsEnd.SENTENCE


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("", "en"),
        ("…", "en"),  # a placeholder, not a word
        ("I'd like to book a table", "en"),  # no mark: the STT has not said
        ("Quisiera reservar una mesa para", "ja"),  # a language without a word list
        ("for", ""),
    ],
)
def test_no_words_no_mark_or_no_word_list_is_unknown(text, language):
    assert words_end(text, language) == WordsEnd.UNKNOWN


def test_the_language_is_read_from_its_tag_and_spanish_has_a_list():
    assert words_end("Quisiera reservar una mesa para", "es-MX") == WordsEnd.UNFINISHED
    assert words_end("Quisiera reservar una mesa para dos.", "es") == WordsEnd.SENTENCE
    assert words_end("Hi, a table for", "EN-us") == WordsEnd.UNFINISHED
