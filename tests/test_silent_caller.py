"""SilentCaller: silence counted only while nobody talks and no reply is due; prompt, goodbye."""

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndWorkerFrame,
    Frame,
    InputDTMFFrame,
    LLMContextFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from processors.silent_caller import SILENCE_REASON, SilentCaller
from telephony.lifecycle import CallLifecycle

PROMPT, GOODBYE = "Are you still there?", "Goodbye."
SECS = 0.3  # both timers; the sleeps below leave a generous margin either side
SHORT, LONG = SleepFrame(sleep=SECS / 2), SleepFrame(sleep=SECS * 2)


def silent_caller(lifecycle: CallLifecycle | None = None, **kwargs) -> SilentCaller:
    return SilentCaller(
        lifecycle or CallLifecycle(),
        prompt=PROMPT,
        goodbye=GOODBYE,
        prompt_secs=SECS,
        goodbye_secs=SECS,
        **kwargs,
    )


def bot_speaks() -> list[Frame]:
    """A bot reply, as it reaches the processor: started, then stopped once heard."""
    return [BotStartedSpeakingFrame(), SleepFrame(sleep=0.05), BotStoppedSpeakingFrame()]


def caller_turn() -> list[Frame]:
    return [
        VADUserStartedSpeakingFrame(),
        UserStartedSpeakingFrame(),
        VADUserStoppedSpeakingFrame(),
        UserStoppedSpeakingFrame(),
    ]


def said(down: list[Frame]) -> list[str]:
    """The processor's own lines, and `END` where it hung up."""
    out = []
    for frame in down:
        if isinstance(frame, TTSSpeakFrame):
            out.append(frame.text)
        elif isinstance(frame, EndWorkerFrame):
            out.append(f"END ({frame.reason})")
    return out


async def run(frames: list[Frame], processor: FrameProcessor | None = None) -> list[Frame]:
    down, _ = await run_test(processor or silent_caller(), frames_to_send=frames, start_timeout=5)
    return list(down)


async def test_a_silent_caller_is_prompted_then_told_goodbye_and_hung_up_on():
    down = await run([*bot_speaks(), LONG, *bot_speaks(), LONG])
    assert said(down) == [PROMPT, GOODBYE, f"END ({SILENCE_REASON})"]
    kinds = [type(f) for f in down]
    assert kinds == [
        BotStartedSpeakingFrame,
        BotStoppedSpeakingFrame,
        TTSSpeakFrame,  # the prompt
        BotStartedSpeakingFrame,  # ... played
        BotStoppedSpeakingFrame,
        TTSSpeakFrame,  # the goodbye
        EndWorkerFrame,
    ]


async def test_the_goodbye_waits_for_the_prompt_to_be_heard():
    down = await run([*bot_speaks(), LONG, LONG])  # the prompt never finishes playing
    assert said(down) == [PROMPT]


async def test_nothing_is_said_while_the_bot_speaks():
    down = await run([BotStartedSpeakingFrame(), LONG, LONG])
    assert said(down) == []


async def test_the_count_starts_when_the_bot_stops():
    down = await run([BotStartedSpeakingFrame(), LONG, BotStoppedSpeakingFrame(), SHORT])
    assert said(down) == [], "silent for half the time only"


async def test_a_caller_speaking_without_a_turn_holds_the_clock_and_restarts_it():
    down = await run(
        [*bot_speaks(), SHORT, VADUserStartedSpeakingFrame(), LONG, VADUserStoppedSpeakingFrame()]
        + [SHORT]
    )
    assert said(down) == [], "speech stopped it, and the count began again when it ended"
    down = await run([*bot_speaks(), VADUserStartedSpeakingFrame(), VADUserStoppedSpeakingFrame()])
    assert said(down) == []
    down = await run(
        [*bot_speaks(), VADUserStartedSpeakingFrame(), VADUserStoppedSpeakingFrame()] + [LONG]
    )
    assert said(down) == [PROMPT]


async def test_a_key_pressed_starts_the_count_over_from_the_prompt():
    key = InputDTMFFrame(KeypadEntry.FOUR)
    down = await run([*bot_speaks(), SHORT, key, SHORT])
    assert said(down) == [], "the key started the count again"
    down = await run([*bot_speaks(), LONG, *bot_speaks(), SHORT, key, LONG])
    assert said(down) == [PROMPT, PROMPT], "after the prompt: prompted again, not told goodbye"


async def test_the_bot_stopping_under_the_callers_voice_does_not_start_the_count():
    barge_in = [BotStartedSpeakingFrame(), VADUserStartedSpeakingFrame(), BotStoppedSpeakingFrame()]
    down = await run([*barge_in, LONG])
    assert said(down) == []
    down = await run([*barge_in, UserStartedSpeakingFrame(), VADUserStoppedSpeakingFrame(), LONG])
    assert said(down) == [], "a turn under way: its end decides"


async def test_caller_speech_after_the_prompt_starts_over_from_the_prompt():
    down = await run([*bot_speaks(), LONG, *bot_speaks(), SHORT, *caller_turn(), LONG])
    assert said(down) == [PROMPT, PROMPT], "an empty turn: prompted again, not told goodbye"


async def test_no_silence_is_counted_while_the_llm_works_on_a_reply():
    context = LLMContext()
    down = await run([*bot_speaks(), *caller_turn(), LLMContextFrame(context), LONG, LONG])
    assert said(down) == []
    down = await run(
        [*bot_speaks(), *caller_turn(), LLMContextFrame(context), LONG, *bot_speaks(), LONG]
    )
    assert said(down) == [PROMPT], "counted again once the reply was heard"


async def test_a_turn_nobody_answers_counts_as_silence():
    down = await run([*bot_speaks(), *caller_turn(), LONG])
    assert said(down) == [PROMPT]


async def test_a_speech_to_speech_service_answers_every_turn():
    down = await run(
        [*bot_speaks(), *caller_turn(), LONG, LONG], silent_caller(answers_every_turn=True)
    )
    assert said(down) == []


class FailingLLM(FrameProcessor):
    """Answers every context with an error, upstream, as a failing LLM service does."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self.push_error("LLM failed")
        else:
            await self.push_frame(frame, direction)


async def test_an_error_instead_of_a_reply_counts_as_silence():
    frames = [*bot_speaks(), *caller_turn(), LLMContextFrame(LLMContext()), LONG]
    down = await run(frames, Pipeline([silent_caller(), FailingLLM()]))
    assert said(down) == [PROMPT]


async def test_the_clock_runs_from_the_start_until_the_bot_first_speaks():
    down = await run([LONG])
    assert said(down) == [PROMPT]


async def test_a_call_already_ending_is_left_alone():
    lifecycle = CallLifecycle()
    lifecycle.end("the bot said its farewell")
    down = await run([*bot_speaks(), LONG], silent_caller(lifecycle))
    assert said(down) == []
    down = await run([*bot_speaks(), EndWorkerFrame(reason="farewell"), LONG])
    assert said(down) == ["END (farewell)"]
