"""SharedSileroVADAnalyzer: one session per process, pipecat's decisions, on the event loop."""

import threading

import numpy as np
import pytest
import soxr
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from models.silero_vad import SharedSileroVADAnalyzer, shared_model
from standins.audio import read_wav

FRAME_SECS = 0.02  # a Twilio media packet


class Scored:
    """Keeps every confidence the analyzer scored, and the thread it scored it on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scores: list[float] = []
        self.threads: set[int] = set()

    def voice_confidence(self, buffer: bytes) -> float:
        confidence = super().voice_confidence(buffer)
        self.scores.append(np.asarray(confidence).item())
        self.threads.add(threading.get_ident())
        return confidence


class OurScored(Scored, SharedSileroVADAnalyzer):
    pass


class PipecatScored(Scored, SileroVADAnalyzer):
    pass


def analyzer(kind: type[VADAnalyzer], rate: int, **params) -> VADAnalyzer:
    made = kind(sample_rate=rate, params=VADParams(**params))
    made.set_sample_rate(rate)
    return made


async def states(vad: VADAnalyzer, pcm: bytes, chunk_secs: float = FRAME_SECS) -> list[VADState]:
    step = round(chunk_secs * vad.sample_rate) * 2
    return [await vad.analyze_audio(pcm[i : i + step]) for i in range(0, len(pcm), step)]


def at_16k(pcm: bytes) -> bytes:
    samples = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0
    resampled = soxr.resample(samples, 8000, 16000, quality="HQ")
    return (np.clip(resampled, -1, 1) * 32767).astype(np.int16).tobytes()


def speech_after_silence(data) -> bytes:
    """Speech with pauses, after 3 s of faint hiss (long non-speech: the model is reset)."""
    hiss = np.random.default_rng(7).normal(0, 30, 3 * 8000).astype(np.int16).tobytes()
    return hiss + read_wav(data / "silero_test_8k.wav")[: 30 * 8000 * 2]


async def same_as_pipecat(pcm: bytes, rate: int, chunk_secs: float, **params) -> OurScored:
    ours, theirs = analyzer(OurScored, rate, **params), analyzer(PipecatScored, rate, **params)
    assert await states(ours, pcm, chunk_secs) == await states(theirs, pcm, chunk_secs)
    assert ours.scores == theirs.scores  # to the bit, model resets included
    return ours


@pytest.mark.parametrize("chunk_secs", [FRAME_SECS, 0.15, 0.25])
async def test_it_decides_as_pipecats_silero_vad_window_for_window(data, chunk_secs):
    pcm = speech_after_silence(data)
    ours = await same_as_pipecat(pcm, 8000, chunk_secs)
    voiced = [s for s in ours.scores if s >= 0.7]
    assert 100 < len(voiced) < len(ours.scores) - 100, "speech and silence both"
    assert ours._windows_since_silero_reset < len(ours.scores) - 100, "the model was reset"


async def test_it_decides_as_pipecats_at_16_khz_and_at_other_thresholds(data):
    pcm = speech_after_silence(data)
    await same_as_pipecat(at_16k(pcm), 16000, FRAME_SECS)
    await same_as_pipecat(pcm, 8000, FRAME_SECS, confidence=0.05, start_secs=0.06)
    await same_as_pipecat(read_wav(data / "aepyx_8k_60s.wav"), 8000, FRAME_SECS, stop_secs=0.5)


async def test_calls_share_the_session_and_keep_their_own_model_state(data):
    first, second = analyzer(OurScored, 8000), analyzer(OurScored, 8000)
    assert first._silero.session is second._silero.session is shared_model().session
    one, two = speech_after_silence(data), read_wav(data / "aepyx_8k_60s.wav")
    step = 320
    together = [
        (
            await first.analyze_audio(one[i : i + step]),
            await second.analyze_audio(two[i : i + step]),
        )
        for i in range(0, min(len(one), len(two)), step)
    ]
    alone_one = await states(analyzer(SharedSileroVADAnalyzer, 8000), one[: len(together) * step])
    alone_two = await states(analyzer(SharedSileroVADAnalyzer, 8000), two[: len(together) * step])
    assert together == list(zip(alone_one, alone_two, strict=True))


async def test_it_scores_on_the_event_loop(data):
    vad = analyzer(OurScored, 8000)
    await states(vad, read_wav(data / "yes.wav"))
    assert vad.scores and vad.threads == {threading.get_ident()}


def test_it_refuses_a_rate_silero_was_not_made_for():
    with pytest.raises(ValueError, match="24000"):
        analyzer(SharedSileroVADAnalyzer, 24000)


async def test_a_reset_due_in_a_long_buffer_that_follows_a_starting_vad_is_pipecats(data):
    """The VAD starting (start_secs 2 s) with a reset due, then 1 s of silence in one buffer."""
    pcm, step = read_wav(data / "silero_test_8k.wav"), 320
    ours, theirs = (
        analyzer(OurScored, 8000, start_secs=2.0),
        analyzer(PipecatScored, 8000, start_secs=2.0),
    )
    for cut in range(0, len(pcm), step):
        state = await ours.analyze_audio(pcm[cut : cut + step])
        assert state == await theirs.analyze_audio(pcm[cut : cut + step])
        if state == VADState.STARTING and ours._windows_since_silero_reset * 256 >= 2 * 8000:
            break
    else:
        pytest.fail("the VAD was never starting with a reset due")
    silence = bytes(8000 * 2)
    assert await ours.analyze_audio(silence) == await theirs.analyze_audio(silence)
    after = pcm[cut + step : cut + step + 2 * 8000 * 2]
    assert await states(ours, after) == await states(theirs, after)
    assert ours.scores == theirs.scores
