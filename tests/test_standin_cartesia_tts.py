"""The Cartesia TTS stand-in speaks Cartesia's WebSocket protocol to raw sockets and to pipecat."""

import asyncio
import base64
import json

import aiohttp
import pytest
from pipecat.frames.frames import (
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.services.cartesia.tts import CartesiaTTSService
from pipecat.tests.utils import SleepFrame, run_test

from standins.cartesia_tts import CartesiaTTSStandIn
from standins.speech import synthesize

HEADERS = {"X-API-Key": "test-key", "Cartesia-Version": "2026-03-01"}
LONG = "We also have a vegetarian risotto with wild mushrooms that our regulars love."


def generation(transcript: str, *, more: bool = True, context_id: str = "ctx-1", **fields):
    request = {
        "transcript": transcript,
        "continue": more,
        "context_id": context_id,
        "model_id": "sonic-3.6",
        "voice": {"mode": "id", "id": "voice-1"},
        "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 8000},
        "add_timestamps": True,
        "language": "en",
        "max_buffer_delay_ms": 0,
    }
    return {**request, **fields}


async def until(ws, kind: str, timeout: float = 3.0) -> list[dict]:
    """Every message up to and including the first of type kind."""
    messages = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads((await ws.receive()).data)
            messages.append(message)
            if message["type"] == kind:
                return messages


def audio_of(messages: list[dict]) -> bytes:
    return b"".join(base64.b64decode(m["data"]) for m in messages if m["type"] == "chunk")


async def connect(http, stand_in, headers=HEADERS, query="") -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(f"{stand_in.ws_url}/tts/websocket{query}", headers=headers)


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({"Cartesia-Version": "2026-03-01"}, "", 401),
        ({"X-API-Key": "wrong", "Cartesia-Version": "2026-03-01"}, "", 401),
        ({"X-API-Key": "test-key"}, "", 400),
    ],
)
async def test_an_upgrade_without_the_right_key_or_a_version_is_refused(headers, query, status):
    async with CartesiaTTSStandIn(api_key="test-key") as stand_in, aiohttp.ClientSession() as h:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(h, stand_in, headers, query)
    assert refused.value.status == status
    assert stand_in.refused == [status] and stand_in.connections == []


async def test_the_key_and_version_may_come_in_the_query_which_wins():
    async with CartesiaTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        query = "?api_key=query-key&cartesia_version=2025-04-16"
        await connect(http, stand_in, {"Cartesia-Version": "2024-06-10"}, query)
        await asyncio.sleep(0.05)
    (conn,) = stand_in.connections
    assert (conn.api_key, conn.version) == ("query-key", "2025-04-16")


async def test_a_context_streams_timestamped_words_as_base64_chunks_then_done():
    async with CartesiaTTSStandIn(chunk_ms=40) as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps(generation("Hello there. ")))
        await ws.send_str(json.dumps(generation("How are you? ")))
        await ws.send_str(json.dumps(generation("", more=False)))
        messages = await until(ws, "done")

    assert audio_of(messages) == synthesize("Hello there. How are you?").pcm
    assert {m["context_id"] for m in messages} == {"ctx-1"}
    chunks = [m for m in messages if m["type"] == "chunk"]
    assert all(len(base64.b64decode(m["data"])) <= 640 for m in chunks)
    assert all(m["done"] is False and m["status_code"] == 206 for m in chunks)
    stamps = [m for m in messages if m["type"] == "timestamps"]
    words = synthesize("Hello there. How are you?").words
    assert [s["word_timestamps"]["words"] for s in stamps] == [[w.word] for w in words]
    assert [s["word_timestamps"]["start"][0] for s in stamps] == [w.start_s for w in words]
    assert [s["word_timestamps"]["end"][0] for s in stamps] == [w.end_s for w in words]
    # Each word's timestamps come before its audio.
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "timestamps" and kinds[-1] == "done"
    (conn,) = stand_in.connections
    assert (conn.api_key, conn.version) == ("test-key", "2026-03-01")
    assert conn.contexts["ctx-1"].text == "Hello there. How are you? "
    assert conn.contexts["ctx-1"].done


async def test_timestamps_may_follow_the_audio_or_never_come():
    for order, first in (("after", "chunk"), (None, "chunk")):
        async with CartesiaTTSStandIn(timestamps=order) as stand_in, aiohttp.ClientSession() as h:
            ws = await connect(h, stand_in)
            await ws.send_str(json.dumps(generation("Hello there.", more=False)))
            messages = await until(ws, "done")
        kinds = [m["type"] for m in messages]
        assert kinds[0] == first
        assert ("timestamps" in kinds) == (order == "after")
        if order == "after":
            assert kinds[kinds.index("timestamps") - 1] == "chunk"


async def test_cancel_stops_a_context_at_once_and_nothing_more_is_sent_for_it():
    full = len(synthesize(LONG).pcm)
    async with (
        CartesiaTTSStandIn(realtime_factor=1.0) as stand_in,
        aiohttp.ClientSession() as http,
    ):
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps(generation(LONG, more=False)))
        await asyncio.sleep(0.5)
        await ws.send_str(json.dumps({"context_id": "ctx-1", "cancel": True}))
        received = []
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.4):
                while True:
                    received.append(json.loads((await ws.receive()).data))
    ctx = stand_in.connections[0].contexts["ctx-1"]
    assert ctx.cancelled and not ctx.done
    assert stand_in.connections[0].cancels == ["ctx-1"]
    assert 0.4 * 16000 <= ctx.audio_bytes <= 0.7 * 16000 < full
    assert "done" not in [m["type"] for m in received]


async def test_without_max_buffer_delay_0_text_waits_for_a_sentence_end():
    async with CartesiaTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        buffered = {k: v for k, v in generation("Hello").items() if k != "max_buffer_delay_ms"}
        await ws.send_str(json.dumps(buffered))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await ws.receive()  # "Hello" waits for more text
        await ws.send_str(json.dumps({**buffered, "transcript": " there."}))
        messages = await until(ws, "chunk")
    assert messages[0]["word_timestamps"]["words"] == ["Hello"]


def output(**fields) -> dict:
    return {
        "output_format": {
            "container": "raw",
            "encoding": "pcm_s16le",
            "sample_rate": 8000,
            **fields,
        }
    }


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (output(sample_rate=8001), "bad_output_format"),
        (output(container="wav"), "bad_output_format"),
        (output(encoding="pcm_mulaw"), "bad_output_format"),
        ({"voice": {"mode": "id"}}, "bad_voice"),
        ({"model_id": ""}, "model_not_found"),
    ],
)
async def test_an_invalid_request_gets_cartesias_error_message(change, code):
    async with CartesiaTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps(generation("Hello.", **change)))
        (error,) = await until(ws, "error")
    assert error["error_code"] == code and error["title"] and error["message"]
    assert error["done"] is True and error["status_code"] == 400
    assert error["context_id"] == "ctx-1"


async def test_a_context_that_is_done_takes_no_more_input():
    async with CartesiaTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        await ws.send_str(json.dumps(generation("Hello.", more=False)))
        await until(ws, "done")
        await ws.send_str(json.dumps(generation("Again.")))
        (error,) = await until(ws, "error")
    assert error["error_code"] == "context_closed"


# run_test's default start_timeout (1 s) can be missed on a cold start: every one gets 5 s.


def pipecat_cartesia(stand_in: CartesiaTTSStandIn) -> CartesiaTTSService:
    return CartesiaTTSService(
        api_key="test-key",
        url=f"{stand_in.ws_url}/tts/websocket",
        sample_rate=8000,
        settings=CartesiaTTSService.Settings(voice="voice-1"),
    )


async def test_pipecat_cartesia_gets_the_audio_and_a_word_frame_per_timestamp():
    frames = [LLMFullResponseStartFrame(), LLMTextFrame("Hello there. "), LLMTextFrame("How ")]
    frames += [LLMTextFrame("are you? "), LLMFullResponseEndFrame(), SleepFrame(0.5)]
    async with CartesiaTTSStandIn() as stand_in:
        down, _ = await run_test(pipecat_cartesia(stand_in), frames_to_send=frames, start_timeout=5)
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert {(f.sample_rate, f.num_channels) for f in audio} == {(8000, 1)}
    assert b"".join(f.audio for f in audio) == synthesize("Hello there. How are you?").pcm
    words = [f.text for f in down if isinstance(f, TTSTextFrame)]
    assert words == ["Hello", "there.", "How", "are", "you?"]
    assert isinstance([f for f in down if not isinstance(f, TTSAudioRawFrame)][-2], TTSStoppedFrame)
    (conn,) = stand_in.connections
    assert (conn.api_key, conn.version) == ("test-key", "2026-03-01")
    first = conn.requests[0]
    assert first["output_format"] == {
        "container": "raw",
        "encoding": "pcm_s16le",
        "sample_rate": 8000,
    }
    assert first["voice"] == {"mode": "id", "id": "voice-1"} and first["add_timestamps"] is True
    assert conn.requests[-1]["transcript"] == "" and conn.requests[-1]["continue"] is False
    # Stock pipecat 1.14 sends sentences without the space between them; Cartesia joins a
    # context's transcripts verbatim (the provider sets `append_trailing_space`).
    assert stand_in.contexts[0].text == "Hello there.How are you?"


async def test_pipecat_cartesia_cancels_the_context_on_an_interruption():
    frames = [LLMFullResponseStartFrame(), LLMTextFrame(LONG), LLMFullResponseEndFrame()]
    frames += [SleepFrame(0.5), InterruptionFrame(), SleepFrame(0.4)]
    async with CartesiaTTSStandIn(realtime_factor=1.0) as stand_in:
        down, _ = await run_test(pipecat_cartesia(stand_in), frames_to_send=frames, start_timeout=5)
    (ctx,) = stand_in.contexts
    assert stand_in.connections[0].cancels == [ctx.context_id]
    assert ctx.cancelled and not ctx.done
    heard = sum(len(f.audio) for f in down if isinstance(f, TTSAudioRawFrame))
    assert 0 < heard <= ctx.audio_bytes < len(synthesize(LONG).pcm) // 2


async def test_buffered_text_is_spoken_after_max_buffer_delay_ms_without_a_sentence_end():
    async with CartesiaTTSStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in)
        sent = asyncio.get_running_loop().time()
        await ws.send_str(json.dumps(generation("Hello", max_buffer_delay_ms=300)))
        (stamp, chunk) = (await until(ws, "chunk"))[:2]
        waited = asyncio.get_running_loop().time() - sent
    assert stamp["word_timestamps"]["words"] == ["Hello"] and chunk["type"] == "chunk"
    assert 0.3 <= waited < 0.6
