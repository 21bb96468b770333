"""The Deepgram live STT stand-in speaks Deepgram's protocol, to a raw socket and to pipecat."""

import asyncio
import hashlib
import json
from urllib.parse import urlencode

import aiohttp
import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.tests.utils import SleepFrame, run_test

from recordings import RECORDINGS
from standins.audio import read_wav
from standins.deepgram_stt import DeepgramSTTStandIn
from standins.script import BOOK_TABLE

DATA = RECORDINGS
AUTH = {"Authorization": "Token test-key"}


def silence(seconds: float) -> bytes:
    return bytes(2 * int(8000 * seconds))


def listen_url(stand_in: DeepgramSTTStandIn, **params: str) -> str:
    query = {"model": "nova-3-general", "encoding": "linear16", "sample_rate": "8000", **params}
    return f"{stand_in.ws_url}/v1/listen?{urlencode(query)}"


async def send_audio(ws: aiohttp.ClientWebSocketResponse, pcm: bytes) -> None:
    for i in range(0, len(pcm), 320):
        await ws.send_bytes(pcm[i : i + 320])


async def receive_until(ws, done, timeout: float = 3.0) -> list[dict]:
    """Messages up to and including the first one for which done(message) is true."""
    messages = []
    async with asyncio.timeout(timeout):
        while not messages or not done(messages[-1]):
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, message
            messages.append(json.loads(message.data))
    return messages


def is_final(message: dict) -> bool:
    return message["type"] == "Results" and message["is_final"]


def transcript(message: dict) -> str:
    return message["channel"]["alternatives"][0]["transcript"]


async def test_an_upgrade_without_a_token_is_refused_with_401():
    async with DeepgramSTTStandIn() as stand_in, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(listen_url(stand_in))
        assert refused.value.status == 401
        assert refused.value.headers["dg-error"]
        assert stand_in.refused == [401] and stand_in.connections == []


async def test_an_encoding_other_than_linear16_is_refused_with_400():
    async with DeepgramSTTStandIn() as stand_in, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(listen_url(stand_in, encoding="mulaw"), headers=AUTH)
        assert refused.value.status == 400


async def test_speech_gets_growing_interim_results_then_a_final_after_the_endpoint():
    async with DeepgramSTTStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            listen_url(stand_in, interim_results="true", punctuate="true"), headers=AUTH
        )
        await send_audio(ws, silence(1.0) + read_wav(DATA / "book_table.wav") + silence(0.5))
        messages = await receive_until(ws, is_final)
        interims = [transcript(m) for m in messages[:-1]]
        final = messages[-1]

    assert all(m["type"] == "Results" for m in messages)
    assert len(interims) >= 8 and all(BOOK_TABLE.startswith(t) for t in interims)
    assert [len(t) for t in interims] == sorted(len(t) for t in interims)
    assert transcript(final) == BOOK_TABLE
    assert final["speech_final"] is True and final["from_finalize"] is False
    assert final["start"] == pytest.approx(1.0, abs=0.03)
    words = final["channel"]["alternatives"][0]["words"]
    assert [w["punctuated_word"] for w in words] == BOOK_TABLE.split()
    assert words[1]["word"] == "i'd"
    assert 1.0 <= words[0]["start"] < words[0]["end"] <= words[1]["start"] < words[-1]["end"] < 4.7
    assert final["channel_index"] == [0, 1] and final["duration"] > 3.3
    assert set(final["metadata"]) >= {"request_id", "model_info", "model_uuid"}
    assert stand_in.connections[0].sent == messages


async def test_a_pause_longer_than_the_endpoint_splits_a_recording_into_two_finals():
    async with DeepgramSTTStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in, punctuate="true"), headers=AUTH)
        await send_audio(ws, read_wav(DATA / "cancel.wav") + silence(0.5))
        await receive_until(ws, lambda m: "reservation" in transcript(m))
    assert stand_in.connections[0].final_transcripts == [
        "Actually, cancel that.",
        "I need to change my reservation.",
    ]


async def test_finalize_flushes_the_pending_segment_as_a_final_from_finalize():
    async with DeepgramSTTStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in, endpointing="1000"), headers=AUTH)
        await send_audio(ws, read_wav(DATA / "yes.wav"))
        await ws.send_str(json.dumps({"type": "Finalize"}))
        final = (await receive_until(ws, is_final))[-1]
    assert final["from_finalize"] is True
    assert transcript(final) == "yes that works"  # punctuate was not asked for
    assert stand_in.connections[0].controls == ["Finalize"]


async def test_finalize_with_nothing_pending_answers_an_empty_final():
    async with DeepgramSTTStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in), headers=AUTH)
        await send_audio(ws, silence(0.5))
        await ws.send_str(json.dumps({"type": "Finalize"}))
        final = (await receive_until(ws, is_final))[-1]
    assert final["from_finalize"] is True and transcript(final) == ""
    assert final["start"] == pytest.approx(0.5)


async def test_closestream_flushes_then_sends_one_metadata_and_closes():
    pcm = read_wav(DATA / "goodbye.wav")
    async with DeepgramSTTStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in, endpointing="false"), headers=AUTH)
        await send_audio(ws, pcm)
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        messages = [json.loads(m.data) async for m in ws]
        assert ws.close_code == 1000
    assert [m["type"] for m in messages] == ["Results", "Metadata"]
    assert transcript(messages[0]) == "thanks that's all goodbye"
    metadata = messages[1]
    assert metadata["duration"] == pytest.approx(len(pcm) / 16000, abs=0.001)
    assert metadata["sha256"] == hashlib.sha256(pcm).hexdigest()
    assert metadata["request_id"] == stand_in.connections[0].request_id
    assert stand_in.connections[0].closed


async def test_a_connection_without_audio_or_keepalive_is_closed_after_the_idle_timeout():
    async with DeepgramSTTStandIn(idle_timeout=0.3) as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in), headers=AUTH)
        async with asyncio.timeout(2):
            message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1011


async def test_keepalive_keeps_an_idle_connection_open():
    async with DeepgramSTTStandIn(idle_timeout=0.3) as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in), headers=AUTH)
        for _ in range(6):
            await ws.send_str(json.dumps({"type": "KeepAlive"}))
            await asyncio.sleep(0.1)
        assert not ws.closed
        assert stand_in.connections[0].controls == ["KeepAlive"] * 6


async def test_speech_started_and_utterance_end_are_sent_only_when_asked():
    pcm = silence(0.4) + read_wav(DATA / "yes.wav") + silence(1.5)
    async with DeepgramSTTStandIn() as stand_in, aiohttp.ClientSession() as http:
        plain = await http.ws_connect(listen_url(stand_in), headers=AUTH)
        asked = await http.ws_connect(
            listen_url(stand_in, vad_events="true", utterance_end_ms="1000"), headers=AUTH
        )
        for ws in (plain, asked):
            await send_audio(ws, pcm)
            await ws.send_str(json.dumps({"type": "CloseStream"}))
            _ = [m async for m in ws]
    plain_types = [m["type"] for m in stand_in.connections[0].sent]
    asked_types = [m["type"] for m in stand_in.connections[1].sent]
    assert "SpeechStarted" not in plain_types and "UtteranceEnd" not in plain_types
    assert asked_types == ["SpeechStarted", "Results", "UtteranceEnd", "Metadata"]
    started, final, end = stand_in.connections[1].sent[:3]
    assert started["timestamp"] == pytest.approx(0.4, abs=0.021)
    assert end["last_word_end"] == final["channel"]["alternatives"][0]["words"][-1]["end"]


async def test_final_delay_holds_back_final_results():
    async with DeepgramSTTStandIn(final_delay=0.4) as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in, endpointing="false"), headers=AUTH)
        await send_audio(ws, read_wav(DATA / "yes.wav"))
        await ws.send_str(json.dumps({"type": "Finalize"}))
        sent_at = asyncio.get_running_loop().time()
        await receive_until(ws, is_final)
        assert asyncio.get_running_loop().time() - sent_at >= 0.4


# run_test's default start_timeout (1 s) can be missed on a cold start, and then its worker keeps
# running and hangs the next test: every run_test here gets a generous one.


def pipecat_frames(pcm: bytes) -> list:
    audio = [
        InputAudioRawFrame(audio=pcm[i : i + 320], sample_rate=8000, num_channels=1)
        for i in range(0, len(pcm), 320)
    ]
    return [VADUserStartedSpeakingFrame(), *audio, VADUserStoppedSpeakingFrame(), SleepFrame(0.5)]


def transcriptions(frames) -> list[str]:
    return [f.text for f in frames if type(f) is TranscriptionFrame]


async def test_pipecat_deepgram_stt_transcribes_a_recording_through_the_stand_in():
    pcm = read_wav(DATA / "book_table.wav")
    async with DeepgramSTTStandIn() as stand_in:
        stt = DeepgramSTTService(api_key="test-key", base_url=stand_in.ws_url, sample_rate=8000)
        down, _ = await run_test(stt, frames_to_send=pipecat_frames(pcm), start_timeout=5)

    assert transcriptions(down) == [BOOK_TABLE]
    interims = [f.text for f in down if isinstance(f, InterimTranscriptionFrame)]
    assert interims and all(BOOK_TABLE.startswith(t) for t in interims)
    conn = stand_in.connections[0]
    assert conn.authorization == "Token test-key"
    assert conn.query["encoding"] == "linear16" and conn.query["sample_rate"] == "8000"
    assert conn.query["interim_results"] == "true" and conn.query["model"] == "nova-3-general"
    assert conn.audio_bytes == len(pcm)
    assert conn.controls == ["Finalize", "CloseStream"]
    assert any(m.get("from_finalize") for m in conn.sent_of("Results"))
    assert conn.closed


async def test_pipecat_keeps_the_audio_it_gets_while_the_connection_opens():
    pcm = read_wav(DATA / "opening_hours.wav")
    async with DeepgramSTTStandIn(connect_delay=0.5) as stand_in:
        stt = DeepgramSTTService(api_key="test-key", base_url=stand_in.ws_url, sample_rate=8000)
        down, _ = await run_test(stt, frames_to_send=pipecat_frames(pcm), start_timeout=5)
    assert transcriptions(down) == ["What time do you open on Saturday?"]
    assert stand_in.connections[0].audio_bytes == len(pcm)


async def test_pipecat_reconnects_after_a_refused_upgrade():
    pcm = read_wav(DATA / "yes.wav")
    async with DeepgramSTTStandIn(reject_connections=1) as stand_in:
        stt = DeepgramSTTService(api_key="test-key", base_url=stand_in.ws_url, sample_rate=8000)
        # pipecat waits at least 4 s before its first retry.
        down, up = await run_test(stt, frames_to_send=pipecat_frames(pcm), start_timeout=10)
    assert stand_in.refused == [503] and len(stand_in.connections) == 1
    assert transcriptions(down) == ["Yes, that works."]
    assert any(isinstance(f, ErrorFrame) and not f.fatal for f in up)


async def test_pipecat_gives_up_at_once_on_a_401():
    async with DeepgramSTTStandIn(api_key="right-key") as stand_in:
        stt = DeepgramSTTService(api_key="wrong-key", base_url=stand_in.ws_url, sample_rate=8000)
        _, up = await run_test(stt, frames_to_send=[SleepFrame(0.5)], start_timeout=5)
    assert stand_in.refused == [401] and stand_in.connections == []
    assert any(isinstance(f, ErrorFrame) and "401" in f.error for f in up)


def book_table_cut() -> tuple[bytes, bytes]:
    """book_table.wav cut mid-sentence (60 % in, on a 20 ms frame): before and after."""
    pcm = read_wav(DATA / "book_table.wav")
    cut = int(len(pcm) * 0.6) // 320 * 320
    return pcm[:cut], pcm[cut:]


async def finalize(ws) -> list[dict]:
    """Send Finalize; the messages up to its final result."""
    await ws.send_str(json.dumps({"type": "Finalize"}))
    return await receive_until(ws, lambda m: m.get("from_finalize"))


async def test_words_after_a_mid_sentence_finalize_are_recognized_in_context():
    before, after = book_table_cut()
    async with DeepgramSTTStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in, punctuate="true"), headers=AUTH)
        await send_audio(ws, before)
        first = await finalize(ws)
        await send_audio(ws, after + silence(0.5))
        second = await finalize(ws)
    finals = [m for m in first + second if m.get("is_final")]
    text = " ".join(m["channel"]["alternatives"][0]["transcript"] for m in finals).split()
    assert " ".join(text) == BOOK_TABLE


async def test_a_finalize_with_nothing_pending_mid_utterance_repeats_no_words():
    before, after = book_table_cut()
    async with DeepgramSTTStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(listen_url(stand_in, punctuate="true"), headers=AUTH)
        await send_audio(ws, before)
        finals = await finalize(ws)
        finals += await finalize(ws)  # nothing pending: an empty final
        await send_audio(ws, after + silence(0.5))
        finals += await finalize(ws)
    texts = [transcript(m) for m in finals if is_final(m)]
    assert texts[1] == ""
    assert " ".join(" ".join(texts).split()) == BOOK_TABLE
