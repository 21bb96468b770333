"""CallTimeLimit: at max_secs, the bot stops, says its time_up line and hangs up."""

from pipecat.frames.frames import (
    EndWorkerFrame,
    InterruptionFrame,
    TTSSpeakFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.utils.text.base_text_aggregator import TextType

from processors.call_time_limit import TIME_UP_REASON, CallTimeLimit
from telephony.lifecycle import CallLifecycle

TIME_UP = "Time's up. Goodbye."


def limit(lifecycle: CallLifecycle | None = None, secs: float = 0.3) -> CallTimeLimit:
    return CallTimeLimit(lifecycle or CallLifecycle(), time_up=TIME_UP, max_secs=secs)


async def test_at_the_limit_the_bot_is_interrupted_says_time_up_and_hangs_up(log_lines):
    talk = TTSTextFrame("Still talking.", text_type=TextType.SENTENCE)
    down, up = await run_test(
        limit(),
        frames_to_send=[talk, SleepFrame(sleep=1.0)],
        expected_down_frames=[TTSTextFrame, InterruptionFrame, TTSSpeakFrame, EndWorkerFrame],
        expected_up_frames=[InterruptionFrame, EndWorkerFrame],  # the worker ends the pipeline
        start_timeout=5,
    )
    assert down[2].text == TIME_UP
    assert down[3].reason == TIME_UP_REASON
    assert down[1].broadcast_sibling_id == up[0].id
    assert log_lines == ["the call reached its time limit of 0.3 s: ending it"]


async def test_nothing_happens_before_the_limit():
    await run_test(limit(secs=1.0), frames_to_send=[SleepFrame(sleep=0.3)], expected_down_frames=[])


async def test_a_call_already_ending_is_left_to_end():
    lifecycle = CallLifecycle()
    lifecycle.end("the bot said its farewell")
    await run_test(
        limit(lifecycle), frames_to_send=[SleepFrame(sleep=0.6)], expected_down_frames=[]
    )
    assert lifecycle.reason == "the bot said its farewell"


async def test_the_limit_claims_the_calls_ending():
    lifecycle = CallLifecycle()
    await run_test(limit(lifecycle), frames_to_send=[SleepFrame(sleep=0.6)])
    assert lifecycle.reason == TIME_UP_REASON


async def test_a_hang_up_on_its_way_stops_the_clock():
    await run_test(
        limit(),
        frames_to_send=[EndWorkerFrame(reason="farewell"), SleepFrame(sleep=0.6)],
        expected_down_frames=[EndWorkerFrame],
    )


async def test_upstream_frames_pass_untouched():
    await run_test(
        limit(secs=5),
        frames_to_send=[TTSTextFrame("x", text_type=TextType.SENTENCE)],
        frames_to_send_direction=FrameDirection.UPSTREAM,
        expected_up_frames=[TTSTextFrame],
    )
