"""The Deepgram streaming TTS stand-in speaks Deepgram's protocol to raw sockets and to pipecat."""

import asyncio
import json
from urllib.parse import urlencode

import aiohttp
import pytest
from pipecat.frames.frames import (
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.services.deepgram.tts import DeepgramTTSService
from pipecat.tests.utils import SleepFrame, run_test

from standins.deepgram_tts import DeepgramTTSStandIn
from standins.speech import synthesize

AUTH = {"Authorization": "Token test-key"}
LONG_TEXT = "Thanks for calling. We are open every day from nine in the morning until ten at night."


def speak_url(stand_in: DeepgramTTSStandIn, **params: str) -> str:
    query = {"model": "aura-2-helena-en", "encoding": "linear16", "sample_rate": "8000", **params}
    return f"{stand_in.ws_url}/v1/speak?{urlencode(query)}"


async def receive_until_text(
    ws, kind: str, timeout: float = 3.0
) -> tuple[bytes, list[bytes], dict]:
    """Audio (all of it, and frame by frame) up to the first text message of type kind."""
    frames = []
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                frames.append(message.data)
                continue
            assert message.type == aiohttp.WSMsgType.TEXT, message
            if (parsed := json.loads(message.data))["type"] == kind:
                return b"".join(frames), frames, parsed


async def connect(http, stand_in, **params) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(speak_url(stand_in, **params), headers=AUTH)
    metadata = json.loads((await ws.receive()).data)
    assert metadata["type"] == "Metadata" and metadata["model_name"] == "aura-2-helena-en"
    return ws


async def test_an_upgrade_without_a_token_or_with_mulaw_is_refused():
    async with DeepgramTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as no_token:
            await http.ws_connect(speak_url(stand_in))
        with pytest.raises(aiohttp.WSServerHandshakeError) as mulaw:
            await http.ws_connect(speak_url(stand_in, encoding="mulaw"), headers=AUTH)
    assert (no_token.value.status, mulaw.value.status) == (401, 400)
    assert stand_in.refused == [401, 400] and stand_in.connections == []


async def test_each_sentence_streams_as_chunks_of_raw_pcm_and_a_flush_answers_flushed():
    async with DeepgramTTSStandIn(chunk_ms=50) as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps({"type": "Speak", "text": "Hello there. "}))
        await ws.send_str(json.dumps({"type": "Speak", "text": "How are you?"}))
        await ws.send_str(json.dumps({"type": "Flush"}))
        audio, frames, flushed = await receive_until_text(ws, "Flushed")
        await ws.send_str(json.dumps({"type": "Speak", "text": "Good."}))
        await ws.send_str(json.dumps({"type": "Flush"}))
        second, _, flushed_again = await receive_until_text(ws, "Flushed")

    assert audio == synthesize("Hello there. How are you?", sample_rate=8000).pcm
    # One stream per sentence: full 50 ms chunks, each sentence's last one shorter.
    assert all(len(f) <= 800 for f in frames) and sum(len(f) < 800 for f in frames) <= 2
    assert second == synthesize("Good.", sample_rate=8000).pcm
    assert (flushed["sequence_id"], flushed_again["sequence_id"]) == (0, 1)
    conn = stand_in.connections[0]
    assert conn.speaks == ["Hello there. ", "How are you?", "Good."]
    assert conn.flushes == 2 and conn.audio_bytes == len(audio) + len(second)
    assert conn.authorization == "Token test-key" and conn.query["sample_rate"] == "8000"


async def test_a_finished_sentence_is_spoken_before_any_flush():
    async with DeepgramTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps({"type": "Speak", "text": "Hello there. "}))
        await ws.send_str(json.dumps({"type": "Speak", "text": "And then"}))
        message = await ws.receive(timeout=5)
        while message.type == aiohttp.WSMsgType.TEXT:
            message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.BINARY  # audio, though no Flush was sent


async def test_the_sample_rate_defaults_to_24000():
    async with DeepgramTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{stand_in.ws_url}/v1/speak?encoding=linear16", headers=AUTH)
        await ws.receive()  # Metadata
        await ws.send_str(json.dumps({"type": "Speak", "text": "Hello."}))
        await ws.send_str(json.dumps({"type": "Flush"}))
        audio, _, _ = await receive_until_text(ws, "Flushed")
    assert audio == synthesize("Hello.", sample_rate=24000).pcm


async def test_clear_mid_stream_stops_the_audio_at_once_and_answers_cleared():
    full = len(synthesize(LONG_TEXT, sample_rate=8000).pcm)
    async with (
        DeepgramTTSStandIn(realtime_factor=1.0) as stand_in,
        aiohttp.ClientSession() as http,
    ):
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps({"type": "Speak", "text": LONG_TEXT}))
        await ws.send_str(json.dumps({"type": "Flush"}))
        await asyncio.sleep(0.5)
        await ws.send_str(json.dumps({"type": "Clear"}))
        before, _, cleared = await receive_until_text(ws, "Cleared")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await ws.receive()  # nothing more: no audio, no Flushed

    assert cleared["sequence_id"] == 0
    assert 0.4 * 16000 <= len(before) <= 0.7 * 16000 < full
    conn = stand_in.connections[0]
    assert conn.clears == 1 and conn.audio_bytes == len(before)
    assert [m["type"] for m in conn.sent] == ["Metadata", "Cleared"]


async def test_clear_drops_text_that_was_not_flushed_yet():
    async with DeepgramTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps({"type": "Speak", "text": "Forget this."}))
        await ws.send_str(json.dumps({"type": "Clear"}))
        await receive_until_text(ws, "Cleared")
        await ws.send_str(json.dumps({"type": "Flush"}))
        audio, _, _ = await receive_until_text(ws, "Flushed")
    assert audio == b""


async def test_ttfb_delays_the_first_audio_of_a_flush():
    async with DeepgramTTSStandIn(ttfb=0.3) as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps({"type": "Speak", "text": "Hello."}))
        await ws.send_str(json.dumps({"type": "Flush"}))
        flushed_at = asyncio.get_running_loop().time()
        first = await ws.receive()
        assert first.type == aiohttp.WSMsgType.BINARY
        assert asyncio.get_running_loop().time() - flushed_at >= 0.3


async def test_close_closes_the_connection():
    async with DeepgramTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps({"type": "Close"}))
        async with asyncio.timeout(2):
            assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1000
    assert stand_in.connections[0].closed


# run_test's default start_timeout (1 s) can be missed on a cold start, and then its worker keeps
# running and hangs the next test: every run_test here gets a generous one.


async def test_pipecat_deepgram_tts_gets_all_the_synthesized_audio_then_a_stop_frame():
    async with DeepgramTTSStandIn() as stand_in:
        tts = DeepgramTTSService(api_key="test-key", base_url=stand_in.ws_url, sample_rate=8000)
        frames = [TTSSpeakFrame("Sure. Your table for two is booked."), SleepFrame(0.5)]
        down, _ = await run_test(tts, frames_to_send=frames, start_timeout=5)

    conn = stand_in.connections[0]
    assert conn.speaks == ["Sure. Your table for two is booked. "]  # pipecat adds the space
    assert conn.flushes == 1 and conn.query["encoding"] == "linear16"
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert {(f.sample_rate, f.num_channels) for f in audio} == {(8000, 1)}
    assert b"".join(f.audio for f in audio) == synthesize(conn.speaks[0], sample_rate=8000).pcm
    kinds = [type(f) for f in down]
    assert kinds.index(TTSStartedFrame) < kinds.index(TTSAudioRawFrame)
    assert kinds.index(TTSStoppedFrame) > len(kinds) - 1 - kinds[::-1].index(TTSAudioRawFrame)


async def test_an_interruption_mid_reply_sends_clear_and_the_audio_stops():
    full = synthesize(LONG_TEXT + " ", sample_rate=8000).pcm
    async with DeepgramTTSStandIn(realtime_factor=1.0) as stand_in:
        tts = DeepgramTTSService(api_key="test-key", base_url=stand_in.ws_url, sample_rate=8000)
        frames = [TTSSpeakFrame(LONG_TEXT), SleepFrame(0.5), InterruptionFrame(), SleepFrame(0.5)]
        down, _ = await run_test(tts, frames_to_send=frames, start_timeout=5)

    conn = stand_in.connections[0]
    assert conn.clears == 1
    assert conn.audio_bytes < len(full) // 4
    heard = sum(len(f.audio) for f in down if isinstance(f, TTSAudioRawFrame))
    assert 0 < heard <= conn.audio_bytes
    assert not any(isinstance(f, TTSStoppedFrame) for f in down)


async def test_a_client_leaving_mid_stream_leaves_the_stand_in_serving():
    async with (
        DeepgramTTSStandIn(realtime_factor=1.0) as stand_in,
        aiohttp.ClientSession() as http,
    ):
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps({"type": "Speak", "text": LONG_TEXT}))
        await ws.send_str(json.dumps({"type": "Flush"}))
        await asyncio.sleep(0.2)
        await ws.close()
        again = await connect(http, stand_in)
        await again.send_str(json.dumps({"type": "Speak", "text": "Hello."}))
        await again.send_str(json.dumps({"type": "Flush"}))
        audio, _, _ = await receive_until_text(again, "Flushed", timeout=5)
    assert audio == synthesize("Hello.", sample_rate=8000).pcm
    assert stand_in.connections[0].closed
