"""ReplyHold: a speculative reply, synthesized ahead, waits after the TTS for its confirmation."""

from pipecat.frames.frames import (
    FunctionCallInProgressFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.utils.text.base_text_aggregator import TextType

from processors.reply_hold import ReplyHold
from turns.frames import ReplyConfirmedFrame, ReplyWithdrawnFrame, SpeculativeReplyFrame

PAUSE = SleepFrame(sleep=0.05)  # lets the queued frames reach the hold before a system frame


def reply(text: str = "Of course.") -> list:
    """A reply as it leaves the TTS."""
    return [
        LLMFullResponseStartFrame(),
        TTSStartedFrame(),
        TTSAudioRawFrame(audio=b"\x00\x01" * 160, sample_rate=8000, num_channels=1),
        TTSTextFrame(text, text_type=TextType.SENTENCE),
        LLMFullResponseEndFrame(),
        TTSStoppedFrame(),
    ]


REPLY_TYPES = [
    LLMFullResponseStartFrame,
    TTSStartedFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
    LLMFullResponseEndFrame,
    TTSStoppedFrame,
]


async def passes(frames: list) -> list[type]:
    down, _ = await run_test(ReplyHold(), frames_to_send=frames)
    return [type(frame) for frame in down]


async def test_a_speculative_reply_waits_for_its_confirmation_then_plays_whole():
    frames = [UserStartedSpeakingFrame(), SpeculativeReplyFrame(), *reply(), PAUSE]
    assert await passes([*frames, UserStoppedSpeakingFrame(), PAUSE]) == [
        UserStartedSpeakingFrame,
        UserStoppedSpeakingFrame,
    ], "the turn's end alone releases nothing: the words may differ"
    assert await passes([*frames, UserStoppedSpeakingFrame(), ReplyConfirmedFrame()]) == [
        UserStartedSpeakingFrame,
        UserStoppedSpeakingFrame,
        *REPLY_TYPES,
    ]


async def test_a_withdrawn_reply_is_dropped_and_the_withdrawal_goes_no_further():
    withdrawn = [UserStartedSpeakingFrame(), SpeculativeReplyFrame(), *reply("Sorry?"), PAUSE]
    frames = [*withdrawn, ReplyWithdrawnFrame(), UserStoppedSpeakingFrame(), *reply()]
    down, _ = await run_test(ReplyHold(), frames_to_send=frames)
    assert [type(f) for f in down] == [
        UserStartedSpeakingFrame,
        UserStoppedSpeakingFrame,
        *REPLY_TYPES,
    ]
    assert [f.text for f in down if isinstance(f, TTSTextFrame)] == ["Of course."]


async def test_a_reply_whose_confirmation_overtook_its_marker_is_not_held():
    frames = [ReplyConfirmedFrame(), PAUSE, SpeculativeReplyFrame(), *reply()]
    assert await passes(frames) == REPLY_TYPES


async def test_after_a_reply_confirmed_ahead_the_next_speculative_one_is_held_again():
    frames = [ReplyConfirmedFrame(), PAUSE, SpeculativeReplyFrame(), *reply()]
    assert await passes([*frames, SpeculativeReplyFrame(), *reply("Sorry?")]) == REPLY_TYPES


async def test_a_barge_in_forgets_a_confirmation_whose_marker_it_dropped():
    frames = [ReplyConfirmedFrame(), InterruptionFrame(), PAUSE, SpeculativeReplyFrame()]
    assert await passes([*frames, *reply()]) == [InterruptionFrame]


async def test_an_ordinary_reply_passes_as_it_comes():
    assert await passes([UserStartedSpeakingFrame(), *reply()]) == [
        UserStartedSpeakingFrame,
        *REPLY_TYPES,
    ]


async def test_a_barge_in_drops_what_was_held_and_goes_on():
    frames = [UserStartedSpeakingFrame(), SpeculativeReplyFrame(), *reply(), PAUSE]
    assert await passes([*frames, InterruptionFrame(), UserStoppedSpeakingFrame()]) == [
        UserStartedSpeakingFrame,
        InterruptionFrame,
        UserStoppedSpeakingFrame,
    ]


async def test_the_tool_call_a_withdrawn_reply_asked_for_never_reaches_the_context():
    asked = FunctionCallInProgressFrame(function_name="end_call", tool_call_id="t1", arguments={})
    other = FunctionCallInProgressFrame(function_name="end_call", tool_call_id="t2", arguments={})
    withdrawn = ReplyWithdrawnFrame(refused_tool_calls=frozenset({"t1"}))
    down, _ = await run_test(ReplyHold(), frames_to_send=[withdrawn, PAUSE, asked, other])
    assert [f.tool_call_id for f in down if isinstance(f, FunctionCallInProgressFrame)] == ["t2"]
