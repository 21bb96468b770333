"""SharedSileroVADAnalyzer: one session per process, pipecat's decisions, on the event loop."""

import asyncio
import threading
from collections.abc import Callable

import numpy as np
import pytest
import soxr
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from models.silero_batcher import SileroBatcher, shared_batcher
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


def analyzer(kind: type[VADAnalyzer], rate: int, *, options=None, **params) -> VADAnalyzer:
    """`kind` at `rate`; ours scores every window, as pipecat's, unless `options` say not."""
    options = options or {}
    if issubclass(kind, SharedSileroVADAnalyzer):
        options = {"skip_quiet": False} | options
    made = kind(sample_rate=rate, params=VADParams(**params), **options)
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


async def same_as_pipecat(
    pcm: bytes, rate: int, chunk_secs: float, batched: bool = True, **params
) -> OurScored:
    batcher = SileroBatcher()  # at the next loop turn: the shared one's 2 ms slow a lone call
    ours = analyzer(OurScored, rate, options={"batched": batched, "batcher": batcher}, **params)
    theirs = analyzer(PipecatScored, rate, **params)
    assert await states(ours, pcm, chunk_secs) == await states(theirs, pcm, chunk_secs)
    assert ours.scores == theirs.scores  # to the bit, model resets included
    return ours


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "alone"])
@pytest.mark.parametrize("chunk_secs", [FRAME_SECS, 0.15, 0.25])
async def test_it_decides_as_pipecats_silero_vad_window_for_window(data, chunk_secs, batched):
    pcm = speech_after_silence(data)
    ours = await same_as_pipecat(pcm, 8000, chunk_secs, batched)
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
    assert first._model is second._model is shared_model() is shared_batcher().model
    one, two = speech_after_silence(data), read_wav(data / "aepyx_8k_60s.wav")
    step = 320
    together = [
        tuple(
            await asyncio.gather(
                first.analyze_audio(one[i : i + step]), second.analyze_audio(two[i : i + step])
            )
        )
        for i in range(0, min(len(one), len(two)), step)
    ]
    assert shared_batcher().largest == 2, "the two calls' windows scored in one run"
    solo = {"batched": False}
    alone_one = await states(analyzer(OurScored, 8000, options=solo), one[: len(together) * step])
    alone_two = await states(analyzer(OurScored, 8000, options=solo), two[: len(together) * step])
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


class Call:
    """A call's audio as the server hears it: from tick `start`, `chunk_secs` a buffer."""

    def __init__(self, pcm: bytes, rate: int, start: int, chunk_secs: float, params_at=None):
        self.pcm, self.rate, self.start, self.params_at = pcm, rate, start, params_at
        self.step = round(chunk_secs * rate) * 2
        self.buffers = len(range(0, len(pcm), self.step))

    def buffer(self, i: int) -> bytes:
        return self.pcm[i * self.step : (i + 1) * self.step]


async def heard(vad: OurScored, call: Call, i: int) -> VADState:
    if i == call.params_at:  # a VADParamsUpdateFrame mid-call: the VAD starts over, quiet
        vad.set_params(VADParams(stop_secs=0.4))
    return await vad.analyze_audio(call.buffer(i))


async def alone(call: Call) -> OurScored:
    vad = analyzer(OurScored, call.rate, options={"batched": False})
    vad.states = [await heard(vad, call, i) for i in range(call.buffers)]
    return vad


async def together(calls: list[Call], batcher: SileroBatcher) -> list[OurScored]:
    """Every call's next buffer at each tick, concurrently, as calls on one server."""
    vads = [analyzer(OurScored, c.rate, options={"batcher": batcher}) for c in calls]
    for vad in vads:
        vad.states = []
    for tick in range(max(c.start + c.buffers for c in calls)):
        on_line = [
            (v, c) for v, c in zip(vads, calls, strict=True) if 0 <= tick - c.start < c.buffers
        ]
        states = await asyncio.gather(*(heard(v, c, tick - c.start) for v, c in on_line))
        for (vad, _), state in zip(on_line, states, strict=True):
            vad.states.append(state)
    return vads


def recorded_calls(data) -> list[Call]:
    """The recordings as calls of different lengths, starting at different ticks."""
    recorded = [read_wav(path) for path in sorted(data.glob("*.wav"))]
    calls = [
        Call(pcm, 8000, start=7 * i, chunk_secs=FRAME_SECS if i % 3 else 0.15)
        for i, pcm in enumerate(recorded)
    ]
    calls.append(Call(speech_after_silence(data), 8000, start=3, chunk_secs=FRAME_SECS))
    calls.append(Call(at_16k(recorded[0][: 20 * 8000 * 2]), 16000, start=11, chunk_secs=0.02))
    calls[-2].params_at = 900  # one call's VAD reset mid-way (at 18 s)
    return calls


async def test_calls_scored_in_one_batch_decide_as_each_scored_alone(data):
    calls, batcher = recorded_calls(data), SileroBatcher()
    batched = await together(calls, batcher)
    assert batcher.largest >= 8, "the calls' windows were scored together"
    for call, vad in zip(calls, batched, strict=True):
        solo = await alone(call)
        assert vad.states == solo.states
        assert vad.scores == pytest.approx(solo.scores, abs=1e-5)
        assert len(vad.scores) == len(call.pcm) // (vad.num_frames_required() * 2)
        assert call.params_at is None or call.params_at < call.buffers
    resets = [v._windows_since_silero_reset < len(v.scores) for v in batched]
    assert sum(resets) >= 2, "the models of several calls were reset on the way"
    assert any(VADState.SPEAKING in v.states for v in batched)
    assert batcher.queued == 0


async def test_a_call_that_ends_while_its_window_waits_leaves_nothing_queued(data):
    batcher = SileroBatcher()
    pcm = read_wav(data / "book_table.wav")
    ending, going_on = (analyzer(OurScored, 8000, options={"batcher": batcher}) for _ in "ab")
    await asyncio.gather(ending.analyze_audio(pcm[:640]), going_on.analyze_audio(pcm[:640]))
    assert batcher.queued == 0
    batcher.delay = 10  # no run before the call ends (two calls: the batcher waits)
    waiting = asyncio.ensure_future(ending.analyze_audio(pcm[640:1280]))
    await asyncio.sleep(0)
    assert batcher.queued == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert batcher.queued == 0

    # A buffer whose analysis was cancelled is as if it never came.
    batcher.delay = 0
    rest = pcm[1280:]
    assert await states(ending, rest) == await states(going_on, rest)
    assert ending.scores == going_on.scores
    assert batcher.queued == 0


class BrokenModel:
    def run(self, rows, state, sample_rate):
        raise RuntimeError("no session")


async def test_a_batch_that_fails_gives_every_waiting_call_confidence_zero_and_logs_once(data):
    from loguru import logger

    async def call(vad: OurScored, sid: str) -> VADState:
        with logger.contextualize(call_sid=sid):
            return await vad.analyze_audio(read_wav(data / "yes.wav")[:512])  # one window

    errors: list[dict] = []
    sink = logger.add(lambda message: errors.append(message.record), level="ERROR")
    try:
        batcher = SileroBatcher(BrokenModel())
        vads = [analyzer(OurScored, 8000, options={"batcher": batcher}) for _ in range(3)]
        models_before = [v._stream.state for v in vads]
        found = await asyncio.gather(*(call(v, f"CA{i}") for i, v in enumerate(vads)))
    finally:
        logger.remove(sink)
    assert found == [VADState.QUIET] * 3
    assert [v.scores for v in vads] == [[0]] * 3
    assert [v._stream.state for v in vads] == models_before, "the models' state left alone"
    assert len(errors) == 1 and "3 windows" in errors[0]["message"]
    assert "call_sid" not in errors[0]["extra"], "the run is no one call's"


def test_the_bundled_model_is_silero_v5_scoring_a_batch_of_streams():
    inputs = {i.name: i.shape for i in shared_model().session.get_inputs()}
    assert inputs == {"input": [None, None], "state": [2, None, 128], "sr": []}


async def test_a_lone_call_does_not_wait_for_others(data):
    batcher = SileroBatcher(delay=10)
    vad = analyzer(OurScored, 8000, options={"batcher": batcher})
    pcm = read_wav(data / "yes.wav")
    assert await asyncio.wait_for(states(vad, pcm[: 8000 * 2]), timeout=5)
    assert batcher.windows == len(vad.scores) == 8000 // 256


def line_noise(secs: float, dbfs: float, seed: int) -> bytes:
    rms = 32768 * 10 ** (dbfs / 20)
    samples = np.random.default_rng(seed).normal(0, rms, int(secs * 8000))
    return samples.astype(np.int16).tobytes()


UTTERANCES = ("book_table", "cancel", "yes", "goodbye", "opening_hours", "manager")


def a_line_with_pauses(data, between: Callable[[int], bytes]) -> tuple[bytes, list[int]]:
    """The recordings one after another, `between(i)` before the i-th; where each starts."""
    pcm, starts = b"", []
    for i, name in enumerate(UTTERANCES):
        pcm += between(i)
        starts.append(len(pcm) // (2 * 8000) * 50)  # in 20 ms packets
        pcm += read_wav(data / f"{name}.wav")
    return pcm + between(len(UTTERANCES)), starts


def speech_starts(states: list[VADState], starts: list[int]) -> list[int]:
    """The packet where the VAD first says SPEAKING after each utterance's start."""
    return [next(i for i in range(s, len(states)) if states[i] == SPEAKING) for s in starts]


SPEAKING = VADState.SPEAKING


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "alone"])
async def test_a_quiet_line_is_not_scored_and_speech_starts_where_pipecats_vad_starts_it(
    data, batched
):
    # 1.5 s pauses: digital silence, and a phone line's noise at -66 dBFS.
    def pause(i: int) -> bytes:
        return line_noise(1.5, -66, i) if i % 2 else bytes(int(1.5 * 8000) * 2)

    pcm, starts = a_line_with_pauses(data, pause)
    options = {"skip_quiet": True, "batched": batched, "batcher": SileroBatcher()}
    ours, theirs = analyzer(OurScored, 8000, options=options), analyzer(PipecatScored, 8000)
    heard, decided = await states(ours, pcm), await states(theirs, pcm)

    windows = len(ours.scores)
    quiet_windows = 7 * 1.5 * 8000 / 256
    assert ours.skipped_windows > 0.8 * quiet_windows, (ours.skipped_windows, quiet_windows)
    assert ours.skipped_windows == sum(1 for s in ours.scores if s == 0)
    assert speech_starts(heard, starts) == speech_starts(decided, starts)
    speaking = sum(s == SPEAKING for s in heard), sum(s == SPEAKING for s in decided)
    assert abs(speaking[0] - speaking[1]) < 0.03 * speaking[1], speaking
    assert windows == len(theirs.scores)


@pytest.mark.parametrize(("dbfs", "scored"), [(-45, 156), (-55, 156), (-66, 12)])
async def test_the_line_is_scored_while_its_last_0_4_s_is_within_10_db_of_min_volume(dbfs, scored):
    # min_volume 0.6 is -50 LUFS: the gate is at -60 dBFS over 0.4 s (13 windows of 32 ms),
    # so the first 12 windows are always scored.
    ours = analyzer(OurScored, 8000, options={"skip_quiet": True, "batched": False})
    await states(ours, line_noise(5.0, dbfs, 1))
    assert len(ours.scores) - ours.skipped_windows == scored
