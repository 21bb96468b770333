"""SpokenReply: which words of a reply the caller heard, however the TTS timed them."""

from telephony.spoken import SpokenReply

RATE = 8000  # samples per second


def at(secs: float) -> int:
    return round(secs * RATE)


def timed_sentences() -> SpokenReply:
    reply = SpokenReply(start=at(10))
    reply.add_text("Of course.")
    reply.end_sentence(at(10.8))
    reply.add_text("A table for two tomorrow at seven.")
    reply.end_sentence(at(12.8))
    reply.finish(at(12.8))
    return reply


def test_sentences_with_known_ends_are_heard_whole_then_by_letters():
    reply = timed_sentences()
    assert reply.heard(at(10.0), at(12.8)) == ""
    assert reply.heard(at(10.8), at(12.8)) == "Of course."
    # 0.9 s into the 2 s second sentence: "A table for two" has played past half of "two".
    assert reply.heard(at(11.7), at(12.8)) == "Of course. A table for two"
    assert reply.heard(at(13.0), at(12.8)) == reply.spoken()


def test_a_word_counts_once_half_of_it_has_played():
    reply = SpokenReply(start=0)
    reply.add_text("Hello there.")
    reply.finish(at(1.0))  # "Hello" is 6/13 of the letters (with its space): 0.46 s
    assert reply.heard(at(0.22), at(1.0)) == ""
    assert reply.heard(at(0.24), at(1.0)) == "Hello"


def test_untimed_sentences_share_the_reply_audio_by_their_letters():
    reply = SpokenReply(start=0)
    reply.add_text("Yes.")  # 4 letters
    reply.add_text("We open at nine.")  # 16 letters
    reply.finish(at(2.0))
    assert reply.heard(at(0.4), at(2.0)) == "Yes."  # the first fifth of the audio
    assert reply.heard(at(1.2), at(2.0)) == "Yes. We open"


def test_words_are_timed_by_their_timestamps_from_the_first():
    reply = SpokenReply(start=at(5))
    ns = 1_000_000_000
    for word, secs in [("Sure,", 0.0), ("we", 0.4), ("open", 0.6), ("at", 1.0), ("nine.", 1.2)]:
        position = reply.add_word(word, 7 * ns + int(secs * ns))  # pipeline clock: 7 s + offset
        assert position == at(5 + secs)
    reply.finish(at(6.8))
    assert reply.heard(at(5.55), at(6.8)) == "Sure, we"  # "open" has not half played
    assert reply.heard(at(5.85), at(6.8)) == "Sure, we open"
    assert reply.heard(at(6.8), at(6.8)) == "Sure, we open at nine."


def test_a_reply_still_coming_is_estimated_from_the_audio_received():
    reply = SpokenReply(start=0)
    reply.add_text("Of course.")
    reply.end_sentence(at(0.8))  # 10 letters in 0.8 s: 80 ms a letter
    reply.add_text("We have tables at seven and at nine.")  # untimed, still being spoken
    assert reply.heard(at(1.3), at(1.5)) == "Of course. We have"  # 0.5 s: 6 letters
