"""SilenceTimedTurnStopStrategy: the turn ends the configured silence after the voice ends."""

import asyncio

import numpy as np
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_processor import UserTurnProcessor
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from turns.silence_stop import SilenceTimedTurnStopStrategy


def packets(seconds: float, amplitude: float) -> list[InputAudioRawFrame]:
    t = np.arange(160) / 8000
    tone = (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.int16).tobytes()
    return [InputAudioRawFrame(tone, 8000, 1) for _ in range(round(seconds / 0.02))]


def voice_then_silence(silence_secs: float) -> list:
    """1 s of voice over a faint line hiss, then `silence_secs` of hiss."""
    return [*packets(1.0, 8000), *packets(silence_secs, 20)]


def test_the_silence_is_measured_from_the_audio_level():
    strategy = SilenceTimedTurnStopStrategy(user_speech_timeout=0.4)
    for frame in voice_then_silence(0.3):
        asyncio.run(strategy.process_frame(frame))
    assert abs(strategy.silent_secs() - 0.3) < 0.001


async def turn_stop_delay(strategy) -> float:
    """Seconds from the VAD's stop to the end of the turn (the frames before it take no time)."""
    processor = UserTurnProcessor(user_turn_strategies=UserTurnStrategies(stop=[strategy]))
    stopped = []

    @processor.event_handler("on_user_turn_stopped")
    async def on_stopped(*args):
        stopped.append(asyncio.get_running_loop().time())

    frames = [VADUserStartedSpeakingFrame(), *voice_then_silence(0.3)]
    frames += [TranscriptionFrame("Yes.", "caller", "t", finalized=True)]
    frames += [VADUserStoppedSpeakingFrame(stop_secs=0.2), SleepFrame(1.0)]
    started = asyncio.get_running_loop().time()
    await run_test(processor, frames_to_send=frames, expected_down_frames=None)
    return stopped[0] - started


async def test_the_turn_ends_earlier_by_the_silence_the_vad_reported_late():
    plain = await turn_stop_delay(SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.4))
    timed = await turn_stop_delay(SilenceTimedTurnStopStrategy(user_speech_timeout=0.4))
    # 0.3 s of silence had passed when the VAD (stop_secs 0.2) reported it: 0.1 s credit.
    assert abs((plain - timed) - 0.1) < 0.05
