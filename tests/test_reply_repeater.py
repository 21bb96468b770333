"""ReplyRepeater: the last reply, whole as the LLM wrote it, said again on request."""

from pipecat.frames.frames import (
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from processors.reply_repeater import ReplyRepeater
from turns.frames import (
    RepeatReplyFrame,
    ReplyConfirmedFrame,
    ReplyWithdrawnFrame,
    SpeculativeReplyFrame,
)

GREETING = "Thanks for calling."
PAUSE = SleepFrame(sleep=0.05)  # lets queued frames through before a system frame


def reply(*tokens: str) -> list:
    return [
        LLMFullResponseStartFrame(),
        *[LLMTextFrame(t) for t in tokens],
        LLMFullResponseEndFrame(),
    ]


async def repeated(frames: list) -> list[str]:
    """What the repeater said again, for each RepeatReply at the end of `frames`."""
    down, _ = await run_test(ReplyRepeater(GREETING), frames_to_send=[*frames, RepeatReplyFrame()])
    assert RepeatReplyFrame not in [type(f) for f in down], "the request goes no further"
    return [f.text for f in down if isinstance(f, TTSSpeakFrame) and f.text not in _spoken(frames)]


def _spoken(frames: list) -> set[str]:
    return {f.text for f in frames if isinstance(f, TTSSpeakFrame)}


async def test_before_any_reply_the_greeting_is_repeated():
    assert await repeated([]) == [GREETING]


async def test_the_last_reply_is_repeated_whole():
    frames = [*reply("Of ", "course."), *reply("We open ", "at nine.")]
    assert await repeated(frames) == ["We open at nine."]


async def test_a_line_spoken_as_it_is_counts_as_the_last_reply():
    down, _ = await run_test(
        ReplyRepeater(GREETING),
        frames_to_send=[
            *reply("Of course."),
            TTSSpeakFrame("Are you still there?"),
            RepeatReplyFrame(),
        ],
    )
    assert [f.text for f in down if isinstance(f, TTSSpeakFrame)] == ["Are you still there?"] * 2


async def test_a_reply_cut_mid_stream_is_repeated_as_far_as_it_was_written():
    frames = [LLMFullResponseStartFrame(), LLMTextFrame("We open "), PAUSE, InterruptionFrame()]
    assert await repeated(frames) == ["We open"]


async def test_a_speculative_reply_counts_only_once_its_turn_ends_on_it():
    speculative = [UserStartedSpeakingFrame(), SpeculativeReplyFrame(), *reply("We open at nine.")]
    assert await repeated([*speculative, PAUSE]) == [GREETING], "the turn is still open"
    assert await repeated([*speculative, PAUSE, ReplyConfirmedFrame()]) == ["We open at nine."]


async def test_a_withdrawn_speculative_reply_is_never_repeated():
    frames = [
        UserStartedSpeakingFrame(),
        SpeculativeReplyFrame(),
        *reply("We open at nine."),
        PAUSE,
        ReplyWithdrawnFrame(),
        UserStoppedSpeakingFrame(),
    ]
    assert await repeated(frames) == [GREETING]
