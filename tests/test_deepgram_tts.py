"""DeepgramAuraTTSService: sentence boundaries in order with the audio, against the stand-in."""

import asyncio

from pipecat.frames.frames import (
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from services.deepgram_tts import DeepgramAuraTTSService
from standins.deepgram_tts import DeepgramTTSStandIn
from standins.speech import synthesize
from telephony.frames import SentenceEndFrame


async def test_each_sentence_ends_with_a_boundary_right_after_its_audio():
    frames = [LLMFullResponseStartFrame(), LLMTextFrame("Hello there. "), LLMTextFrame("How ")]
    frames += [LLMTextFrame("are you? "), LLMFullResponseEndFrame(), SleepFrame(1.0)]
    async with DeepgramTTSStandIn() as stand_in:
        tts = DeepgramAuraTTSService(api_key="k", base_url=stand_in.ws_url, sample_rate=8000)
        down, _ = await run_test(tts, frames_to_send=frames, start_timeout=5)
    audio_before: list[int] = []
    total = 0
    for frame in down:
        if isinstance(frame, TTSAudioRawFrame):
            total += len(frame.audio)
        elif isinstance(frame, SentenceEndFrame):
            audio_before.append(total)
    first = len(synthesize("Hello there.").pcm)
    assert audio_before == [first, first + len(synthesize("How are you?").pcm)]
    assert [type(f) for f in down if isinstance(f, TTSStoppedFrame)] == [TTSStoppedFrame]
    (connection,) = stand_in.connections
    assert connection.flushes == 3  # one per sentence, one for the end of the reply


async def test_the_pipeline_starts_without_waiting_for_the_handshake():
    frames = [LLMFullResponseStartFrame(), LLMTextFrame("Hello there. "), LLMFullResponseEndFrame()]
    async with DeepgramTTSStandIn(connect_delay=1.5) as stand_in:
        tts = DeepgramAuraTTSService(api_key="k", base_url=stand_in.ws_url, sample_rate=8000)
        started = asyncio.get_running_loop().time()
        await run_test(tts, frames_to_send=[], start_timeout=5)
        # Stock DeepgramTTSService would have held the pipeline's start for the 1.5 s handshake.
        assert asyncio.get_running_loop().time() - started < 1.0
        tts = DeepgramAuraTTSService(api_key="k", base_url=stand_in.ws_url, sample_rate=8000)
        down, _ = await run_test(tts, frames_to_send=[*frames, SleepFrame(2.5)], start_timeout=5)
    audio = sum(len(f.audio) for f in down if isinstance(f, TTSAudioRawFrame))
    assert audio == len(synthesize("Hello there.").pcm), "the first sentence waited for the socket"
