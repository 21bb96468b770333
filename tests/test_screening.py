"""An outbound call's callee, until Twilio says who answered: muted, and no silence counted."""

import asyncio

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioRawFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from processors.silent_caller import SilentCaller
from telephony.lifecycle import CallLifecycle
from turns.screening_mute import ScreeningMuteStrategy

PROMPT = "Are you still there?"
LONG = SleepFrame(sleep=0.6)


async def test_the_callee_is_muted_while_screened_and_heard_after_the_verdict():
    lifecycle = CallLifecycle()
    lifecycle.screening = True
    strategy = ScreeningMuteStrategy(lifecycle)
    greeting = TranscriptionFrame("Hi, you've reached Ada.", "", "")
    assert await strategy.process_frame(greeting) is True
    assert await strategy.process_frame(InputAudioRawFrame(b"\0" * 320, 8000, 1)) is True
    lifecycle.screening = False
    assert await strategy.process_frame(InputAudioRawFrame(b"\0" * 320, 8000, 1)) is False


async def test_no_silence_is_counted_until_the_verdict_then_from_the_greeting_heard():
    lifecycle = CallLifecycle()
    lifecycle.screening = True
    silent = SilentCaller(
        lifecycle, prompt=PROMPT, goodbye="Bye.", prompt_secs=0.3, goodbye_secs=0.3
    )
    # The verdict comes after a voicemail-long wait, twice the prompt's: then the greeting.
    asyncio.get_running_loop().call_later(0.7, setattr, lifecycle, "screening", False)
    greeting = [BotStartedSpeakingFrame(), SleepFrame(sleep=0.05), BotStoppedSpeakingFrame()]
    speak = [TTSSpeakFrame("Hi Ada."), SleepFrame(sleep=0.05)]  # (system frames jump the queue)
    frames = [LONG, SleepFrame(sleep=0.3), *speak, *greeting, LONG]

    down, _ = await run_test(silent, frames_to_send=frames, start_timeout=5)

    said = [f.text for f in down if isinstance(f, TTSSpeakFrame)]
    assert said == ["Hi Ada.", PROMPT]  # no prompt while screened; one once the greeting played
    prompt = next(
        i for i, f in enumerate(down) if isinstance(f, TTSSpeakFrame) and f.text == PROMPT
    )
    assert isinstance(down[prompt - 1], BotStoppedSpeakingFrame)
