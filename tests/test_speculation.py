"""SpeculativeTurnStop in the user aggregator: frames in, the speculative requests out."""

import numpy as np
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    LLMMessagesAppendFrame,
    TranscriptionFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from turns.frames import CallerPausedFrame
from turns.speculation import SpeculativeSilenceStop

PACKET_S = 0.02


class LevelSensor(FrameProcessor):
    """Stands in for the VAD's windows: a loud packet is speech, a quiet one is not."""

    def __init__(self):
        super().__init__()
        self.quiet_secs = self.voiced_secs = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            loud = np.abs(np.frombuffer(frame.audio, np.int16)).max() > 1000
            self.voiced_secs = self.voiced_secs + PACKET_S if loud else 0.0
            self.quiet_secs = 0.0 if loud else self.quiet_secs + PACKET_S
        await self.push_frame(frame, direction)


class FailingLLM(FrameProcessor):
    """Fails every speculative request, as an LLM error would: an ErrorFrame upstream."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and frame.speculation:
            await self.push_frame(ErrorFrame("the LLM failed"), FrameDirection.UPSTREAM)


class ToolCallingLLM(FrameProcessor):
    """Wants a tool call on every speculative request: withdraws it, as pipecat's LLM does."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and frame.speculation:
            await self.broadcast_frame(EagerEndOfTurnCancelFrame)


def audio(seconds: float, loud: bool) -> list[Frame]:
    """Packets of a tone or of a faint hiss, in real time."""
    t = np.arange(160) / 8000
    tone = ((8000 if loud else 10) * np.sin(2 * np.pi * 220 * t)).astype(np.int16).tobytes()
    packet = [InputAudioRawFrame(tone, 8000, 1), SleepFrame(PACKET_S)]
    return packet * round(seconds / PACKET_S)


def words(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text, "caller", "t", finalized=True)


def interim(text: str) -> InterimTranscriptionFrame:
    return InterimTranscriptionFrame(text, "caller", "t")


VOICE = [VADUserStartedSpeakingFrame(), *audio(0.5, loud=True)]
STOP = VADUserStoppedSpeakingFrame(stop_secs=0.2)


async def requests(
    frames: list[Frame],
    max_per_turn: int = 2,
    llm=None,
    pauses: bool = False,
    stop: type[SpeculativeSilenceStop] = SpeculativeSilenceStop,
    line: list[Frame] | None = None,
    **kwargs,
) -> list[str]:
    """What left the aggregator: each LLM request (`?`: speculative) and withdrawal, in order.

    `pauses`: the `CallerPausedFrame`s too ("pause"). `line`: what follows `frames` (the
    line's quiet packets as the turn ends, by default). `kwargs`: for the strategy.

    Every test's turn ends once, after its pauses (a `CallerPausedFrame` each): checked here.
    """
    sensor = LevelSensor()
    context = LLMContext()
    strategy = stop(
        vad=sensor, context=context, pause_secs=0.1, resume_secs=0.06, max_per_turn=max_per_turn,
        user_speech_timeout=0.3, **kwargs,
    )  # fmt: skip
    params = LLMUserAggregatorParams(user_turn_strategies=UserTurnStrategies(stop=[strategy]))
    user = LLMContextAggregatorPair(context, user_params=params).user()
    down, up = await run_test(
        Pipeline([sensor, user, *([llm] if llm else [])]),
        frames_to_send=[*frames, *(line or audio(0.6, loud=False))],
        expected_down_frames=None,
    )
    names = [_name(f) for f in down if _name(f)]
    assert names.count("end") == 1
    paused = [f for f in up if isinstance(f, CallerPausedFrame)]
    assert len(paused) == names.count("pause"), "the STT upstream hears of every pause"
    return [name for name in names if name != "end" and (pauses or name != "pause")]


def _name(frame: Frame) -> str:
    if isinstance(frame, LLMContextFrame):
        said = frame.context.messages[-1]["content"]
        return f"{'?' if frame.speculation else ''}{said}"
    names = {
        CallerPausedFrame: "pause",
        EagerEndOfTurnCancelFrame: "withdrawn",
        UserStoppedSpeakingFrame: "end",
    }
    return names.get(type(frame), "")


async def test_the_pause_is_answered_ahead_and_the_turn_end_confirms_it():
    frames = [*VOICE, words("Yes."), *audio(0.3, loud=False), STOP]
    assert await requests(frames) == ["?Yes."]


async def test_interim_words_are_answered_at_the_pause_and_the_final_ones_confirm_them():
    frames = [*VOICE, interim("Yes"), *audio(0.2, loud=False), words("Yes.")]
    frames += [*audio(0.1, loud=False), STOP]
    assert await requests(frames) == ["?Yes"]


async def test_final_words_other_than_the_interim_ones_replace_the_speculation():
    frames = [*VOICE, interim("Yes"), *audio(0.2, loud=False), words("Yes, at seven.")]
    frames += [*audio(0.1, loud=False), STOP]
    assert await requests(frames) == ["?Yes", "withdrawn", "?Yes, at seven."]


async def test_a_pause_before_any_word_is_transcribed_is_not_finalized():
    frames = [*VOICE, *audio(0.2, loud=False), *audio(0.3, loud=True), words("Yes.")]
    frames += [*audio(0.3, loud=False), STOP]
    assert await requests(frames, pauses=True) == ["?Yes."]  # its words were final already


async def test_a_pause_after_interim_words_asks_the_stt_to_finalize_them():
    frames = [*VOICE, interim("Yes"), *audio(0.2, loud=False), words("Yes.")]
    frames += [*audio(0.1, loud=False), STOP]
    # (the reply starts on the interim words at once: the two leave in either order)
    assert sorted(await requests(frames, pauses=True)) == ["?Yes", "pause"]


async def test_a_caller_who_goes_on_withdraws_it_and_the_next_pause_speculates_again():
    frames = [*VOICE, words("Yes."), *audio(0.15, loud=False), *audio(0.3, loud=True)]
    frames += [words("Seven."), *audio(0.3, loud=False), STOP]
    assert await requests(frames) == ["?Yes.", "withdrawn", "?Yes. Seven."]


async def test_past_the_limit_the_turn_end_asks_as_usual():
    frames = [*VOICE, words("Yes."), *audio(0.15, loud=False), *audio(0.3, loud=True)]
    frames += [words("Seven."), *audio(0.3, loud=False), STOP]
    assert await requests(frames, max_per_turn=1) == ["?Yes.", "withdrawn", "Yes. Seven."]


async def test_later_words_in_the_same_pause_replace_the_speculation():
    frames = [*VOICE, words("Yes."), *audio(0.15, loud=False), words("Seven.")]
    frames += [*audio(0.15, loud=False), STOP]
    assert await requests(frames) == ["?Yes.", "withdrawn", "?Yes. Seven."]


async def test_a_failed_speculative_request_is_asked_again_at_the_turn_end():
    frames = [*VOICE, words("Yes."), *audio(0.3, loud=False), STOP]
    assert await requests(frames, llm=FailingLLM()) == ["?Yes.", "withdrawn", "Yes."]


async def test_a_caller_who_never_pauses_is_never_answered_ahead():
    frames = [*VOICE, words("Yes."), *audio(0.06, loud=False), *audio(0.3, loud=True), STOP]
    # No pause after the stop either: the line goes quiet, the turn ends 0.5 s late.
    assert await requests(frames, line=[SleepFrame(1.0)]) == ["Yes."]


async def test_a_shorter_pause_is_enough_after_words_that_end_a_sentence():
    def short_pause_then_more(said: str) -> list[Frame]:
        return [*VOICE, words(said), *audio(0.06, loud=False), *audio(0.3, loud=True), STOP]

    sentence = {"language": "en", "sentence_pause_secs": 0.04, "line": [SleepFrame(1.0)]}
    said = await requests(short_pause_then_more("Yes."), **sentence)
    assert said == ["?Yes.", "withdrawn", "Yes."]
    assert await requests(short_pause_then_more("A table for"), **sentence) == ["A table for"]
    assert await requests(short_pause_then_more("Yes."), line=[SleepFrame(1.0)]) == ["Yes."]


async def test_a_speculation_the_llm_withdraws_for_a_tool_call_is_asked_again_at_the_turn_end():
    frames = [*VOICE, words("Goodbye."), *audio(0.3, loud=False), STOP]
    assert await requests(frames, llm=ToolCallingLLM()) == ["?Goodbye.", "withdrawn", "Goodbye."]


async def test_a_speculation_on_a_context_that_changed_since_is_asked_again_at_the_turn_end():
    # What a barge-in's cut does: the reply the caller cut in on reaches the context late.
    heard = LLMMessagesAppendFrame([{"role": "assistant", "content": "Tonight we…"}])
    frames = [*VOICE, words("Stop."), *audio(0.15, loud=False), heard, *audio(0.15, loud=False)]
    assert await requests([*frames, STOP]) == ["?Stop.", "withdrawn", "Stop."]


class CutAtThePause(SpeculativeSilenceStop):
    """A barge-in's cut reaches the context just after the pause asked for a speculation."""

    def __init__(self, *, context: LLMContext, **kwargs):
        super().__init__(context=context, **kwargs)
        self.context = context

    async def trigger_user_turn_inference_triggered(self, *, speculation=None):
        await super().trigger_user_turn_inference_triggered(speculation=speculation)
        if speculation:
            self.context.add_message({"role": "assistant", "content": "Tonight we…"})


async def test_a_context_that_changed_before_the_speculation_was_built_still_confirms_it():
    frames = [*VOICE, words("Stop."), *audio(0.3, loud=False), STOP]
    assert await requests(frames, stop=CutAtThePause) == ["?Stop."]
