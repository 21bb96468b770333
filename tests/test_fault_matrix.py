"""The fault matrix's own parts: reading back what the caller heard, and its report lines."""

import itertools
from types import SimpleNamespace

from harness.faults import Fault, Outcome, heard_sentences
from harness.faults.__main__ import line
from standins.audio import pcm_to_ulaw
from standins.playout import Stretch
from standins.speech import synthesize

REPLY = "Of course. A table for two tomorrow at seven. May I have a name for the booking?"
APOLOGY = "Sorry, I had a problem on my end. Could you say that again?"


def voice(text: str) -> bytes:
    return pcm_to_ulaw(synthesize(text).pcm)


def call_that_heard(*stretches: tuple[float, bytes]) -> SimpleNamespace:
    return SimpleNamespace(heard=[Stretch(start=t, ulaw=bytearray(a)) for t, a in stretches])


def test_whole_sentences_are_read_back_in_order():
    audio = voice("Of course.") + voice("A table for two tomorrow at seven.")
    call = call_that_heard((1.0, audio), (5.0, voice("Sorry, I had a problem on my end.")))
    assert heard_sentences(call, [REPLY, APOLOGY]) == [
        "Of course.",
        "A table for two tomorrow at seven.",
        "Sorry, I had a problem on my end.",
    ]
    assert heard_sentences(call, [REPLY, APOLOGY], since=2.0) == [
        "Sorry, I had a problem on my end."
    ]


def test_a_cut_sentence_lists_the_words_heard():
    sentence = "A table for two tomorrow at seven."
    words = synthesize(sentence).words
    cut = voice(sentence)[: int(words[2].end_s * 8000) + 80]
    call = call_that_heard((0.0, cut + voice("Of course.")))
    assert heard_sentences(call, [REPLY]) == ["A table for…", "Of course."]


def test_audio_that_is_no_sentence_is_measured_not_guessed():
    call = call_that_heard((0.0, b"\x00" * 8000 + voice("Of course.")))
    assert heard_sentences(call, [REPLY]) == ["[1.0 s of other audio]", "Of course."]
    stray = call_that_heard((0.0, b"\x00" * 240 + voice("Of course.")))  # not whole packets
    assert heard_sentences(stray, [REPLY]) == ["Of course."]  # under 0.1 s: padding


def test_several_sentences_spoken_as_one_text_are_read_back_whole():
    call = call_that_heard((0.0, voice(APOLOGY)))
    assert heard_sentences(call, [APOLOGY]) == [APOLOGY]


def test_a_report_line_says_the_verdict_what_was_injected_and_heard():
    fault = Fault("LLM answers HTTP 500", "500 on the booking turn", run=None)
    outcome = Outcome(survived=True, heard=["Of course."], figures="apology 1.20 s")
    assert line(fault, outcome, 3.0) == (
        "SURVIVED  LLM answers HTTP 500 | injected: 500 on the booking turn\n"
        '    heard: "Of course."\n    apology 1.20 s   (3.0 s)'
    )
    failed = line(fault, Outcome(survived=False, heard=[], problems=["no apology"]), 1.0)
    assert failed.startswith("FAILED") and "PROBLEM: no apology" in failed


def test_a_sentence_split_by_playout_gaps_is_read_back_whole():
    # Audio that came late leaves gaps: each stretch goes on where the last one stopped.
    audio = voice("Of course.") + voice("A table for two tomorrow at seven.")
    cuts = [0, 2001, 2803, 9000, len(audio)]
    call = call_that_heard(*((i, audio[a:b]) for i, (a, b) in enumerate(itertools.pairwise(cuts))))
    assert heard_sentences(call, [REPLY]) == ["Of course.", "A table for two tomorrow at seven."]


def test_a_reply_resumed_a_little_before_its_pause_is_read_back_whole():
    sentence = voice("A table for two tomorrow at seven.")
    call = call_that_heard((0.0, sentence[:7000]), (2.0, sentence[6200:] + voice("Of course.")))
    assert heard_sentences(call, [REPLY]) == ["A table for two tomorrow at seven.", "Of course."]


def test_a_resumed_sentence_cut_again_lists_all_the_words_heard():
    sentence = "A table for two tomorrow at seven."
    words = synthesize(sentence).words
    cut = int(words[1].end_s * 8000) + 80
    again = int(words[3].end_s * 8000) + 80
    call = call_that_heard((0.0, voice(sentence)[:cut]), (1.0, voice(sentence)[cut:again]))
    assert heard_sentences(call, [REPLY]) == ["A table for two…"]


def test_audio_that_skips_part_of_a_cut_sentence_is_not_its_continuation():
    sentence = voice("A table for two tomorrow at seven.")
    call = call_that_heard((0.0, sentence[:4000]), (1.0, sentence[12000:]))
    heard = heard_sentences(call, [REPLY])
    assert heard[1:] == ["[0.7 s of other audio]"] and heard[0].endswith("…")
    # Nor is a stretch that starts mid-sentence with nothing cut before it.
    alone = call_that_heard((0.0, voice("Of course.")), (1.0, sentence[4000:]))
    assert heard_sentences(alone, [REPLY]) == ["Of course.", "[1.7 s of other audio]"]
