"""The fake voice and the catalogue recognizer behind the Deepgram stand-ins."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

from recordings import RECORDINGS
from standins.audio import pcm_to_ulaw, read_wav, ulaw_to_pcm
from standins.speech import (
    MATCH_THRESHOLD,
    UNRECOGNIZED,
    Recognizer,
    is_speech,
    synthesize,
)

DATA = RECORDINGS
CATALOGUE = ["book_table", "opening_hours", "cancel", "yes", "goodbye"]


def mulaw_round_trip(pcm: bytes) -> bytes:
    return ulaw_to_pcm(pcm_to_ulaw(pcm))


def silence(seconds: float) -> bytes:
    return bytes(2 * int(8000 * seconds))


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.from_transcripts(DATA / "transcripts.txt")


@pytest.fixture(scope="module")
def transcripts() -> dict[str, str]:
    lines = (DATA / "transcripts.txt").read_text().splitlines()
    return dict(line.split("|", 1) for line in lines if line.strip())


def test_words_last_55_ms_a_letter_within_150_to_600_ms_with_longer_pauses_after_sentences():
    spoken = synthesize("a extraordinarily Hello. world")
    durations = [round(w.end_s - w.start_s, 3) for w in spoken.words]
    gaps = [round(b.start_s - a.end_s, 3) for a, b in itertools.pairwise(spoken.words)]
    assert [w.word for w in spoken.words] == ["a", "extraordinarily", "Hello.", "world"]
    assert durations == [0.15, 0.6, 0.275, 0.275]
    assert gaps == [0.06, 0.06, 0.25]
    assert spoken.duration_s == pytest.approx(spoken.words[-1].end_s + 0.06)


def test_synthesis_is_the_same_in_every_process():
    script = "from standins.speech import synthesize; import hashlib, sys; "
    script += "sys.stdout.write(hashlib.sha256(synthesize('Hello there, caller.').pcm).hexdigest())"
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": "."},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_different_words_get_different_voices_and_the_same_word_the_same():
    first, second, again = (synthesize(w).pcm for w in ("table", "cable", "table"))
    assert first == again
    assert first != second


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_synthesis_has_the_same_timing_and_loud_words_at_every_rate(rate):
    spoken = synthesize("Your table for two is booked.", sample_rate=rate)
    assert spoken.sample_rate == rate
    assert spoken.duration_s == pytest.approx(
        synthesize("Your table for two is booked.").duration_s
    )
    for word in spoken.words:
        middle = int((word.start_s + word.end_s) / 2 * rate) * 2
        assert is_speech(spoken.pcm[middle : middle + rate // 50 * 2]), word
    gap = int((spoken.words[0].end_s + 0.03) * rate) * 2
    assert not is_speech(spoken.pcm[gap : gap + rate // 100 * 2])


def test_silero_vad_hears_the_synthesized_voice_as_speech():
    from pipecat.audio.vad.silero import SileroVADAnalyzer

    spoken = synthesize("Sure. We are open from nine in the morning until ten at night.")
    vad = SileroVADAnalyzer(sample_rate=8000)
    vad.set_sample_rate(8000)
    window = vad.num_frames_required() * 2
    confidences = [
        vad.voice_confidence(spoken.pcm[i : i + window])
        for i in range(0, len(spoken.pcm) - window, window)
    ]
    assert np.mean(np.array(confidences) > 0.7) > 0.6


@pytest.mark.parametrize("name", CATALOGUE)
def test_every_recording_is_recognized_after_a_mulaw_round_trip(
    recognizer, transcripts, data, name
):
    heard = recognizer.recognize(mulaw_round_trip(read_wav(data / f"{name}.wav")))
    assert heard.transcript == transcripts[name]
    assert heard.score >= MATCH_THRESHOLD


@pytest.mark.parametrize("name", CATALOGUE)
def test_added_silence_changes_the_word_times_but_not_the_words(recognizer, data, name):
    pcm = read_wav(data / f"{name}.wav")
    plain = recognizer.recognize(pcm)
    padded = recognizer.recognize(mulaw_round_trip(silence(0.3) + pcm + silence(0.5)))
    assert padded.transcript == plain.transcript
    assert padded.words[0].start_s == pytest.approx(plain.words[0].start_s + 0.3, abs=0.011)
    assert padded.words[-1].end_s == pytest.approx(plain.words[-1].end_s + 0.3, abs=0.011)


@pytest.mark.parametrize("name", CATALOGUE)
def test_a_recording_cut_short_gives_a_growing_prefix_of_its_words(
    recognizer, transcripts, data, name
):
    pcm = read_wav(data / f"{name}.wav")
    words = transcripts[name].split()
    heard = []
    for fraction in (0.3, 0.5, 0.7, 1.0):
        cut = pcm[: int(len(pcm) * fraction) // 2 * 2]
        heard.append(recognizer.recognize(mulaw_round_trip(cut)).transcript.split())
    for prefix in heard:
        assert prefix == words[: len(prefix)]
    assert [len(p) for p in heard] == sorted(len(p) for p in heard)
    assert 0 < len(heard[1]) < len(words)
    assert heard[-1] == words


def test_the_second_sentence_alone_is_recognized_as_that_sentence(recognizer, data):
    pcm = read_wav(data / "cancel.wav")
    heard = recognizer.recognize(pcm[int(1.85 * 8000) * 2 :])
    assert heard.transcript == "I need to change my reservation."


def test_unrelated_real_speech_is_unrecognized(recognizer, data):
    pcm = read_wav(data / "silero_test_8k.wav")
    for start in np.arange(0.0, 55.0, 2.5):
        piece = pcm[int(start * 8000) * 2 : int((start + 2.0) * 8000) * 2]
        heard = recognizer.recognize(piece)
        assert heard.transcript in ("", UNRECOGNIZED), start
        assert heard.score < MATCH_THRESHOLD


def test_too_little_speech_or_only_silence_gives_an_empty_transcript(recognizer, data):
    pcm = read_wav(data / "book_table.wav")
    assert recognizer.recognize(pcm[: int(0.2 * 8000) * 2]).transcript == ""
    assert recognizer.recognize(silence(2.0)).transcript == ""


def test_a_recognizer_built_from_synthesized_speech_recognizes_it():
    lines = ["Sure, I can help with that.", "Your table is booked for seven."]
    recognizer = Recognizer([(line, synthesize(line).pcm) for line in lines])
    for line in lines:
        heard = recognizer.recognize(silence(0.2) + mulaw_round_trip(synthesize(line).pcm))
        assert heard.transcript == line
    assert recognizer.transcripts == lines
