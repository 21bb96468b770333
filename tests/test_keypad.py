"""Keypad: keys collected into an entry, committed as one caller turn; shortcuts act at once."""

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    InputDTMFFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMContextUserTurnFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from processors.keypad import KeyActionParams, Keypad
from telephony.lifecycle import CallLifecycle
from turns.frames import RepeatReplyFrame

PAUSE_SECS = 0.3
WAIT = SleepFrame(sleep=PAUSE_SECS * 2)


def keys(pressed: str) -> list:
    return [InputDTMFFrame(KeypadEntry(key)) for key in pressed]


async def entered(frames: list, **kwargs) -> tuple[list[str], list, list, LLMContext]:
    """The caller turns the keypad wrote, and the frames it sent down and up."""
    context = LLMContext()
    lifecycle = kwargs.pop("lifecycle", CallLifecycle())
    keypad = Keypad(context, lifecycle, pause_secs=PAUSE_SECS, **kwargs)
    down, up = await run_test(keypad, frames_to_send=frames, expected_down_frames=None)
    turns = [m["content"] for m in context.messages if m["role"] == "user"]
    return turns, list(down), list(up), context


def kinds(frames: list) -> list[type]:
    return [type(frame) for frame in frames]


async def test_keys_up_to_the_end_key_are_one_turn_and_the_llm_is_asked():
    turns, down, up, context = await entered(keys("4217#"))
    assert turns == ["The caller pressed 4 2 1 7 #"]
    assert kinds(down) == [
        InterruptionFrame,  # the first key barges in
        *[InputDTMFFrame] * 5,
        LLMContextUserTurnFrame,
        LLMContextFrame,
    ]
    assert down[-1].context is context
    assert down[-2].text == "The caller pressed 4 2 1 7 #"
    assert kinds(up) == [InterruptionFrame, LLMContextUserTurnFrame]


async def test_a_pause_commits_the_entry_and_the_next_key_starts_another():
    turns, down, _up, _ = await entered([*keys("12"), WAIT, *keys("3"), WAIT])
    assert turns == ["The caller pressed 1 2", "The caller pressed 3"]
    assert kinds(down).count(InterruptionFrame) == 2, "each entry's first key barges in"


async def test_the_declared_length_commits_the_entry():
    turns, _down, _up, _ = await entered(keys("12345"), max_digits=4)
    assert turns[0] == "The caller pressed 1 2 3 4"


async def test_with_no_end_key_the_pound_key_is_a_digit_like_any():
    turns, _down, _up, _ = await entered([*keys("1#2"), WAIT], end_key="")
    assert turns == ["The caller pressed 1 # 2"]


async def test_a_shortcut_acts_at_once_without_a_turn():
    turns, down, _up, _ = await entered(keys("9"), shortcuts={"9": "repeat"})
    assert turns == []
    assert kinds(down) == [InterruptionFrame, InputDTMFFrame, RepeatReplyFrame]


async def test_a_shortcut_key_inside_an_entry_is_a_digit():
    turns, down, _up, _ = await entered(keys("19#"), shortcuts={"9": "repeat"})
    assert turns == ["The caller pressed 1 9 #"]
    assert RepeatReplyFrame not in kinds(down)


async def test_a_registered_action_runs_for_its_shortcut():
    pressed: list[str] = []

    async def transfer(params: KeyActionParams) -> None:
        pressed.append(params.key)

    keypad_kwargs = {"shortcuts": {"0": "transfer"}, "actions": {"transfer": transfer}}
    turns, _down, _up, _ = await entered(keys("0"), **keypad_kwargs)
    assert pressed == ["0"] and turns == []


async def test_a_shortcut_with_no_handler_is_logged_and_nothing_happens(log_lines):
    turns, down, _up, _ = await entered(keys("0"), shortcuts={"0": "transfer"})
    assert turns == [] and kinds(down) == [InterruptionFrame, InputDTMFFrame]
    assert any("'transfer', which has no handler" in line for line in log_lines)


async def test_keys_are_ignored_while_the_call_ends():
    lifecycle = CallLifecycle()
    lifecycle.end("the bot said its farewell")
    turns, down, _up, _ = await entered([*keys("12#"), WAIT], lifecycle=lifecycle)
    assert turns == [] and InputDTMFFrame not in kinds(down)


async def test_an_entry_open_when_the_call_ends_is_dropped(debug_lines):
    turns, down, _up, _ = await entered(keys("12"))  # the test's EndFrame comes at once
    assert turns == [] and LLMContextFrame not in kinds(down)
    assert "the call ended before the keys '12' were entered" in debug_lines
