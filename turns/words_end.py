"""What the caller's words say about the end of their turn: no sentence ends on "for"."""

from enum import Enum


class WordsEnd(Enum):
    """How a turn's transcript so far ends."""

    UNFINISHED = "on a word no sentence ends with"  # "…a table for", "…and", "…um"
    SENTENCE = "on a sentence's end"  # the STT's full stop, question or exclamation mark
    UNKNOWN = "without a sign"  # no words, no mark, or a language without a word list


# Words a statement never ends on: articles, determiners, prepositions that are not also
# particles ("check in", "hang up", "I'd like to"), conjunctions, a subject with its
# auxiliary, hesitations. Only words that never end one: a word that sometimes does ("that",
# "so", "this", "his") would hold finished sentences back. A question or exclamation mark
# after one is the STT hearing an ending ("Who is it for?").
_UNFINISHED_AFTER = {
    "en": frozenset(
        "a an the my your our their every "
        "for of from with without between than into "
        "and but or nor because although whereas unless "
        "i'd i'm i'll i've we'd we're we'll we've you're you'll they're they'll it's there's "
        "um uh er erm uhm very".split()
    ),
    "es": frozenset(
        "el la los las un unos unas mi mis tu tus su sus nuestro nuestra "
        "a al de del en con por para sin sobre entre desde hacia "
        "y e o u pero ni porque aunque que eh mmm muy".split()
    ),
}
_ENDINGS = ".?!"  # marks a punctuating STT ends a sentence with
_HEARD_ENDINGS = "?!"  # ...of which these follow any word
_NOT_IN_WORDS = '.,;:?!¿¡…"“”()'


def words_end(text: str, language: str) -> WordsEnd:
    """How `text` (a punctuating STT's, in `language`, e.g. "en-US") ends."""
    unfinished_after = _UNFINISHED_AFTER.get(language.split("-")[0].lower())
    words = text.replace("’", "'").split()
    if not unfinished_after or not words:
        return WordsEnd.UNKNOWN
    last = words[-1].strip(_NOT_IN_WORDS).lower()
    if not last:
        return WordsEnd.UNKNOWN  # "…": a placeholder, not a word
    mark = words[-1][-1]
    if last in unfinished_after and mark not in _HEARD_ENDINGS:
        return WordsEnd.UNFINISHED
    return WordsEnd.SENTENCE if mark in _ENDINGS else WordsEnd.UNKNOWN
