"""GreetingPlayer: the cached greeting, played as a TTS reply right after StartFrame."""

from pipecat.frames.frames import (
    LLMAssistantPushAggregationFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.tests.utils import run_test

from processors.greeting_player import GreetingPlayer, SpokenSentence
from telephony.frames import SentenceEndFrame


async def test_the_greeting_plays_at_start_as_a_tts_reply_in_50_ms_frames():
    greeting = [SpokenSentence("Hello.", bytes(1000)), SpokenSentence("Hi again.", bytes(800))]
    down, _ = await run_test(
        GreetingPlayer(greeting), frames_to_send=[], ignore_start=False, start_timeout=5
    )
    kinds = [type(f) for f in down][1:]  # after StartFrame
    assert kinds == [
        TTSStartedFrame,
        TTSTextFrame,
        TTSAudioRawFrame,
        TTSAudioRawFrame,
        SentenceEndFrame,
        TTSTextFrame,
        TTSAudioRawFrame,
        SentenceEndFrame,
        TTSStoppedFrame,
        LLMAssistantPushAggregationFrame,
    ]
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert [len(f.audio) for f in audio] == [800, 200, 800]
    assert all(f.sample_rate == 8000 for f in audio)
