"""HandOff: the hand-off frame that reaches it (once heard) hands the call over."""

from pipecat.frames.frames import TextFrame
from pipecat.tests.utils import run_test

from processors.hand_off import HandOff
from telephony.frames import HandOffFrame


async def test_a_hand_off_frame_hands_the_call_to_its_target_and_goes_no_further():
    handed: list[str] = []

    async def hand_off(target: str) -> None:
        handed.append(target)

    down, _ = await run_test(
        HandOff(hand_off),
        frames_to_send=[TextFrame("before"), HandOffFrame("manager"), TextFrame("after")],
        expected_down_frames=[TextFrame, TextFrame],
    )
    assert handed == ["manager"]
    assert [f.text for f in down] == ["before", "after"]


def test_no_barge_in_drops_a_hand_off():
    assert HandOffFrame("manager").interruptible is False
