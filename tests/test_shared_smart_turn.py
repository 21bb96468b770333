"""SharedSmartTurnAnalyzerV3: one ONNX session per process, pipecat's verdicts, per-call audio."""

import asyncio
import os
import threading

from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, BaseTurnParams, EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    MetricsFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TurnMetricsData
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_processor import UserTurnProcessor
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from models.smart_turn import (
    SharedSmartTurnAnalyzerV3,
    shared_executor,
    shared_session,
)
from pipelines.build import SAMPLE_RATE, _turn_stop
from pipelines.declaration import Turn
from standins.audio import read_wav
from turns.smart_turn_stop import SmartTurnStop

PACKET = 320  # 20 ms of 8 kHz PCM


def analyzer(kind=SharedSmartTurnAnalyzerV3, **params):
    made = kind(sample_rate=SAMPLE_RATE, params=SmartTurnParams(**params))
    made.set_sample_rate(SAMPLE_RATE)
    return made


def packets(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + PACKET] for i in range(0, len(pcm), PACKET)]


def feed(turn_analyzer, pcm: bytes) -> None:
    for packet in packets(pcm):
        turn_analyzer.append_audio(packet, True)


async def verdict(turn_analyzer, pcm: bytes) -> tuple[EndOfTurnState, float]:
    feed(turn_analyzer, pcm)
    state, metrics = await turn_analyzer.analyze_end_of_turn()
    assert isinstance(metrics, TurnMetricsData)
    return state, metrics.probability


def speech(data) -> dict[str, bytes]:
    """Whole utterances, and two cut short."""
    book, cancel = read_wav(data / "book_table.wav"), read_wav(data / "cancel.wav")
    return {
        "book_table": book,
        "book_table, 2 s": book[: 2 * 8000 * 2],
        "cancel, 1.6 s": cancel[: int(2 * 8000 * 1.6)],
        "cancel": cancel,
        "yes": read_wav(data / "yes.wav"),
    }


def test_every_analyzer_uses_the_one_session_of_the_process():
    first, second = analyzer(), analyzer(stop_secs=1.0)
    assert first._onnx_session is second._onnx_session is shared_session()
    assert first.params.stop_secs == 3.0 and second.params.stop_secs == 1.0


async def test_its_verdicts_are_pipecats_own(data):
    for name, pcm in speech(data).items():
        ours = await verdict(analyzer(), pcm)
        theirs = await verdict(analyzer(LocalSmartTurnAnalyzerV3), pcm)
        assert ours == theirs, name  # the same state and the same probability, to the bit


async def test_silence_around_the_speech_is_kept_and_ends_the_turn_as_pipecats(data):
    silence, speech = bytes(2 * 8000 * 2), read_wav(data / "book_table.wav")

    async def turn(kind) -> tuple:
        made = analyzer(kind, stop_secs=1.0)
        made.update_vad_start_secs(0.2)
        states = [made.append_audio(p, False) for p in packets(silence)]
        states += [made.append_audio(p, True) for p in packets(speech)]
        state, metrics = await made.analyze_end_of_turn()  # with the silence before it
        made = analyzer(kind, stop_secs=1.0)  # and a turn the model is not asked about
        states += [made.append_audio(p, is_speech) for p, is_speech in talk_then_silence()]
        return states, state, metrics.probability, made.speech_triggered

    def talk_then_silence() -> list[tuple[bytes, bool]]:
        return [(p, True) for p in packets(speech)] + [(p, False) for p in packets(silence)]

    ours, theirs = await turn(SharedSmartTurnAnalyzerV3), await turn(LocalSmartTurnAnalyzerV3)
    assert ours == theirs
    states = ours[0]
    assert states.index(EndOfTurnState.COMPLETE) == len(states) - 51, "after 1 s of silence"


async def test_calls_running_at_once_keep_their_own_audio(data):
    spoken = speech(data)
    alone = {name: await verdict(analyzer(), pcm) for name, pcm in spoken.items()}
    # Every call on its own analyzer, all inferring at once on the shared session.
    together = await asyncio.gather(*(verdict(analyzer(), pcm) for pcm in spoken.values()))
    assert dict(zip(spoken, together, strict=True)) == alone
    idle = analyzer()
    assert not idle.speech_triggered and idle._chunks == []


async def test_calls_infer_on_the_process_threads_one_per_cpu(data):
    calls = [analyzer() for _ in range(6)]
    pcm = read_wav(data / "yes.wav")
    await asyncio.gather(*(verdict(call, pcm) for call in calls))
    threads = [t for t in threading.enumerate() if t.name.startswith("smart-turn")]
    assert 1 <= len(threads) <= len(os.sched_getaffinity(0))
    await calls[0].cleanup()  # a call's end leaves the shared threads to the others
    calls[1].clear()
    assert await verdict(calls[1], pcm) == await verdict(analyzer(), pcm)
    assert shared_executor().submit(lambda: "alive").result() == "alive"


async def test_the_bot_builds_smart_turn_on_the_shared_analyzer():
    strategy = _turn_stop(Turn(end="smart-turn", smart_turn_max_secs=1.5), "smart-turn")
    assert isinstance(strategy, SmartTurnStop)
    turn_analyzer = strategy._analyzer
    assert isinstance(turn_analyzer, SharedSmartTurnAnalyzerV3)
    assert turn_analyzer._onnx_session is shared_session()


async def turn_after(pcm: bytes) -> tuple[bool, float]:
    """Whether the turn ended within 1 s of the VAD's stop (no audio after it), and p(complete)."""
    strategy = TurnAnalyzerUserTurnStopStrategy(turn_analyzer=analyzer())
    processor = UserTurnProcessor(user_turn_strategies=UserTurnStrategies(stop=[strategy]))
    stopped = []

    @processor.event_handler("on_user_turn_stopped")
    async def on_stopped(*args):
        stopped.append(True)

    packets = [InputAudioRawFrame(pcm[i : i + PACKET], 8000, 1) for i in range(0, len(pcm), PACKET)]
    frames = [VADUserStartedSpeakingFrame(), *packets]
    frames += [TranscriptionFrame("…", "caller", "t", finalized=True)]
    frames += [VADUserStoppedSpeakingFrame(stop_secs=0.2), SleepFrame(1.0)]
    down, _ = await run_test(processor, frames_to_send=frames, expected_down_frames=None)
    verdicts = [d for f in down if isinstance(f, MetricsFrame) for d in f.data]
    assert len(verdicts) == 1 and isinstance(verdicts[0], TurnMetricsData)
    return bool(stopped), verdicts[0].probability


async def test_in_a_call_the_turn_ends_at_once_only_if_the_model_says_complete(data):
    spoken = speech(data)
    ended, complete = await turn_after(spoken["yes"])
    assert ended and complete > 0.5
    # Smart Turn v3 takes this finished (synthesized) sentence for unfinished: the turn
    # waits for more speech or the silence fallback (see TURNS.md).
    ended, complete = await turn_after(spoken["book_table"])
    assert not ended and complete < 0.5


class Verdict(BaseTurnAnalyzer):
    """Smart Turn's verdict, fixed: the finished-sentence probability `p`."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    @property
    def speech_triggered(self) -> bool:
        return False

    @property
    def params(self) -> BaseTurnParams:
        return BaseTurnParams()

    def append_audio(self, buffer: bytes, is_speech: bool) -> EndOfTurnState:
        return EndOfTurnState.INCOMPLETE

    async def analyze_end_of_turn(self) -> tuple[EndOfTurnState, TurnMetricsData]:
        state = EndOfTurnState.COMPLETE if self.p > 0.5 else EndOfTurnState.INCOMPLETE
        verdict = TurnMetricsData(
            processor="v", is_complete=self.p > 0.5, probability=self.p, e2e_processing_time_ms=1
        )
        return state, verdict

    def clear(self):
        pass


async def ended_within(p: float, secs: float, *said: Frame) -> bool:
    """Whether the turn ended `secs` after the VAD's stop: finished 0.05 s, unsure 0.5, not 5.

    `said`: the transcripts before the stop (default: "…", no sign either way).
    """
    strategy = SmartTurnStop(
        turn_analyzer=Verdict(p), complete_secs=0.05, unsure_secs=0.5, incomplete_secs=5.0,
        unfinished_below=0.1, language="en",
    )  # fmt: skip
    processor = UserTurnProcessor(user_turn_strategies=UserTurnStrategies(stop=[strategy]))
    stopped = []

    @processor.event_handler("on_user_turn_stopped")
    async def on_stopped(*args):
        stopped.append(True)

    frames = [VADUserStartedSpeakingFrame(), *(said or [final("…")]), SleepFrame(0.05)]
    frames += [VADUserStoppedSpeakingFrame(stop_secs=0.2), SleepFrame(secs)]
    await run_test(processor, frames_to_send=frames, expected_down_frames=None)
    return bool(stopped)


async def test_a_surely_unfinished_sentence_waits_longest_and_an_unsure_one_the_timeout():
    assert await ended_within(0.9, 0.4)  # finished: 0.05 s
    assert not await ended_within(0.3, 0.2)  # unsure: 0.5 s
    assert await ended_within(0.3, 1.0)
    assert not await ended_within(0.05, 1.0)  # surely unfinished: 5 s


def final(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text, "caller", "t", finalized=True)


async def test_words_that_end_a_sentence_lift_a_surely_unfinished_verdict_to_unsure():
    said = final("Hi, I'd like to book a table for two tomorrow at seven.")
    assert not await ended_within(0.05, 0.2, said)
    assert await ended_within(0.05, 1.0, said)  # the plain timeout, not the longest wait
    assert not await ended_within(0.05, 1.0, final("I'd like to book a table"))  # no mark


async def test_words_no_sentence_ends_on_wait_a_step_longer_whatever_the_audio():
    assert not await ended_within(0.9, 0.3, final("A table for"))  # finished by its sound
    assert await ended_within(0.9, 1.0, final("A table for"))
    # Unsure by its sound, on "and" in the STT's interim words: the longest wait.
    said = [final("Two people."), InterimTranscriptionFrame("And", "caller", "t")]
    assert not await ended_within(0.3, 1.0, *said)
