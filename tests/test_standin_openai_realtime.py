"""The OpenAI Realtime stand-in speaks the GA protocol to raw sockets and to pipecat's client."""

import asyncio
import base64
import json

import aiohttp
import pydantic
import pytest
from openai.types.realtime import RealtimeServerEvent
from pipecat.frames.frames import InputAudioRawFrame, TranscriptionFrame, TTSAudioRawFrame
from pipecat.services.openai.realtime import events
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.tests.utils import SleepFrame, run_test

from recordings import RECORDINGS
from standins.audio import pcm_to_ulaw, read_wav
from standins.openai_realtime import OpenAIRealtimeStandIn
from standins.openai_replies import LONG_REPLY, Reply, fixed_reply
from standins.script import BOOK_TABLE, BOOKING_REPLY
from standins.speech import is_speech, synthesize

AUTH = {"Authorization": "Bearer test-key"}
END_CALL = {"type": "function", "name": "end_call", "description": "Hang up.", "parameters": {}}
SERVER_EVENT = pydantic.TypeAdapter(RealtimeServerEvent)


def realtime_url(stand_in: OpenAIRealtimeStandIn, query: str = "?model=gpt-realtime") -> str:
    return f"{stand_in.ws_url}/v1/realtime{query}"


def mulaw_session(turn_detection: dict | None = None, **extra) -> dict:
    """A session.update for μ-law both ways, turns ended by the client unless given."""
    pcmu = {"type": "audio/pcmu"}
    transcription = {"model": "gpt-4o-mini-transcribe"}
    audio_in = {"format": pcmu, "turn_detection": turn_detection, "transcription": transcription}
    audio = {"input": audio_in, "output": {"format": pcmu, "voice": "marin"}}
    return {"type": "session.update", "session": {"type": "realtime", "audio": audio, **extra}}


async def connect(
    http: aiohttp.ClientSession, stand_in, session: dict
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(realtime_url(stand_in), headers=AUTH)
    assert (await receive(ws))["type"] == "session.created"
    await ws.send_json(session)
    assert (await receive(ws))["type"] == "session.updated"
    return ws


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20.0) -> dict:
    """The next server event, checked against OpenAI's own SDK types."""
    message = await ws.receive(timeout=timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    event = json.loads(message.data)
    SERVER_EVENT.validate_python(event)
    return event


async def until(ws, kind: str, timeout: float = 20.0) -> list[dict]:
    """Server events up to and including the first of type `kind`."""
    seen = []
    async with asyncio.timeout(timeout):
        while not seen or seen[-1]["type"] != kind:
            seen.append(await receive(ws))
    return seen


async def append(ws, ulaw: bytes, chunk: int = 160) -> None:
    for i in range(0, len(ulaw), chunk):
        audio = base64.b64encode(ulaw[i : i + chunk]).decode()
        await ws.send_json({"type": "input_audio_buffer.append", "audio": audio})


def audio_of(seen: list[dict]) -> bytes:
    deltas = [e["delta"] for e in seen if e["type"] == "response.output_audio.delta"]
    return b"".join(base64.b64decode(delta) for delta in deltas)


async def test_an_upgrade_without_a_bearer_key_or_a_model_or_in_beta_is_refused():
    async with OpenAIRealtimeStandIn() as stand_in, aiohttp.ClientSession() as http:
        for url, headers in [
            (realtime_url(stand_in), {}),
            (realtime_url(stand_in, ""), AUTH),
            (realtime_url(stand_in), AUTH | {"OpenAI-Beta": "realtime=v1"}),
        ]:
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(url, headers=headers)
    assert stand_in.refused == [401, 400, 400] and stand_in.connections == []


async def test_a_wrong_key_gets_the_invalid_api_key_error_then_a_close():
    async with OpenAIRealtimeStandIn(api_key="right") as stand_in, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(realtime_url(stand_in), headers=AUTH)
        error = await receive(ws)
        closing = await ws.receive(timeout=5)
    assert error["type"] == "error" and error["error"]["code"] == "invalid_api_key"
    assert closing.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 3000


async def test_pipecats_client_is_heard_and_answered_in_its_default_pcm_session():
    async with OpenAIRealtimeStandIn() as stand_in:
        transcription = events.InputAudioTranscription(model="gpt-4o-mini-transcribe")
        session = events.SessionProperties(
            audio=events.AudioConfiguration(input=events.AudioInput(transcription=transcription))
        )
        llm = OpenAIRealtimeLLMService(
            api_key="test-key",
            base_url=f"{stand_in.ws_url}/v1/realtime",
            settings=OpenAIRealtimeLLMService.Settings(
                system_instruction="You are a receptionist.", session_properties=session
            ),
        )
        pcm = read_wav(RECORDINGS / "book_table.wav") + bytes(16000)  # then a second of silence
        frames = [InputAudioRawFrame(pcm[i : i + 320], 8000, 1) for i in range(0, len(pcm), 320)]
        down, up = await run_test(llm, frames_to_send=[SleepFrame(0.3), *frames, SleepFrame(2)])

    (conn,) = stand_in.connections
    assert conn.authorization == "Bearer test-key" and conn.query["model"] == "gpt-realtime-2.1"
    assert conn.session["instructions"] == "You are a receptionist."
    assert all(
        update["instructions"] == "You are a receptionist." for update in conn.session_updates
    )
    assert conn.session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert conn.sent_of("input_audio_buffer.speech_started"), "the server VAD heard the caller"
    assert [commit.transcript for commit in conn.commits] == [BOOK_TABLE]
    assert [f.text for f in up if isinstance(f, TranscriptionFrame)] == [BOOK_TABLE]
    (response,) = conn.responses
    assert response.reply.text == BOOKING_REPLY and response.status == "completed"
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert {f.sample_rate for f in audio} == {24000}
    assert b"".join(f.audio for f in audio) == synthesize(BOOKING_REPLY, 24000).pcm
    for event in conn.sent:
        if event["type"] == "response.output_audio.delta":
            event = event | {"delta": ""}  # recorded as its size
        SERVER_EVENT.validate_python(event)
    assert conn.errors == []


async def test_a_mulaw_session_commits_transcribes_and_answers_in_mulaw():
    async with OpenAIRealtimeStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in, mulaw_session())
        ulaw = pcm_to_ulaw(read_wav(RECORDINGS / "book_table.wav"))
        await append(ws, ulaw)
        await ws.send_json({"type": "input_audio_buffer.commit"})
        committed = await until(ws, "conversation.item.input_audio_transcription.completed")
        await ws.send_json({"type": "response.create"})
        answered = await until(ws, "response.done")

    (conn,) = stand_in.connections
    assert bytes(conn.audio) == ulaw == conn.commits[0].audio, "every byte as appended"
    assert conn.session["audio"]["output"] == {
        "format": {"type": "audio/pcmu"},
        "voice": "marin",
        "speed": 1.0,
    }
    assert [e["type"] for e in committed] == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert committed[-1]["transcript"] == BOOK_TABLE
    kinds = [e["type"] for e in answered]
    assert kinds[:4] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ]
    assert audio_of(answered) == pcm_to_ulaw(synthesize(BOOKING_REPLY, 8000).pcm)
    transcript = "".join(
        e["delta"] for e in answered if e["type"] == "response.output_audio_transcript.delta"
    )
    assert transcript == BOOKING_REPLY
    assert answered[-1]["response"]["status"] == "completed"
    assert answered[-1]["response"]["output"][0]["content"][0]["transcript"] == BOOKING_REPLY
    assert not conn.sent_of("input_audio_buffer.speech_started"), (
        "no server VAD: turn_detection null"
    )


async def test_a_reply_is_truncated_and_cancelled_while_it_plays():
    stand_in = OpenAIRealtimeStandIn(responder=fixed_reply(LONG_REPLY), realtime_factor=1.0)
    async with stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in, mulaw_session())
        await ws.send_json({"type": "response.create"})
        seen = await until(ws, "response.output_audio.delta")
        while len(audio_of(seen)) < 8 * 600:  # 600 ms of μ-law has come
            seen.append(await receive(ws))
        item_id = seen[-1]["item_id"]
        truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
        await ws.send_json(truncate | {"audio_end_ms": 400})
        await ws.send_json({"type": "response.cancel"})
        ended = await until(ws, "response.done")
        await ws.send_json({"type": "response.cancel", "event_id": "again"})
        await ws.send_json(truncate | {"audio_end_ms": 60_000, "event_id": "too-far"})
        refused = [await receive(ws), await receive(ws)]

    (conn,) = stand_in.connections
    (truncation,) = conn.truncations
    words = synthesize(LONG_REPLY).words
    heard = [w.word for w in words if (w.start_s + w.end_s) / 2 < 0.4]
    assert (truncation.item_id, truncation.audio_end_ms, truncation.heard.split()) == (
        item_id,
        400,
        heard,
    )
    assert [e["type"] for e in ended][-1] == "response.done"
    assert "conversation.item.truncated" in [e["type"] for e in ended]
    (response,) = conn.responses
    assert ended[-1]["response"]["status_details"] == {
        "type": "cancelled",
        "reason": "client_cancelled",
    }
    assert response.status == "cancelled" and response.audio_ms < 2000
    assert conn.cancels == [response.id, None]
    assert [(r["error"]["code"], r["error"]["event_id"]) for r in refused] == [
        ("response_cancel_not_active", "again"),
        ("invalid_value", "too-far"),
    ]


async def test_server_vad_cuts_a_reply_when_the_caller_speaks_then_answers_them():
    replies = iter([LONG_REPLY, "Sure."])  # the first response, then the one to the caller
    stand_in = OpenAIRealtimeStandIn(
        responder=lambda messages, tools: Reply(text=next(replies)), realtime_factor=1.0
    )
    vad = {"type": "server_vad", "silence_duration_ms": 400}
    async with stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in, mulaw_session(vad))
        await ws.send_json({"type": "response.create"})
        await until(ws, "response.output_audio.delta")
        speech = bytes(16000) + read_wav(RECORDINGS / "book_table.wav") + bytes(16000)
        await append(ws, pcm_to_ulaw(speech))
        cut = await until(ws, "response.done")
        answered = await until(ws, "response.done")

    started = next(e for e in cut if e["type"] == "input_audio_buffer.speech_started")
    pcm = read_wav(RECORDINGS / "book_table.wav")
    first = next(i for i in range(0, len(pcm), 320) if is_speech(pcm[i : i + 320])) // 320
    assert started["audio_start_ms"] == 1000 + 20 * first - 300, "the onset, less 300 ms padding"
    assert cut[-1]["response"]["status_details"]["reason"] == "turn_detected"
    kinds = [e["type"] for e in answered]
    assert kinds.index("input_audio_buffer.speech_stopped") < kinds.index("response.created")
    assert stand_in.connections[0].commits[0].item_id == started["item_id"]
    assert answered[-1]["response"]["output"][0]["content"][0]["transcript"] == "Sure."


async def test_the_offered_tool_is_called_and_an_instruction_to_say_something_is_obeyed():
    async with OpenAIRealtimeStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in, mulaw_session(tools=[END_CALL]))
        await append(ws, pcm_to_ulaw(read_wav(RECORDINGS / "goodbye.wav")))
        await ws.send_json({"type": "input_audio_buffer.commit"})
        await ws.send_json({"type": "response.create"})
        called = await until(ws, "response.done")
        arguments = next(e for e in called if e["type"].endswith("function_call_arguments.done"))
        output = {"type": "function_call_output", "call_id": arguments["call_id"], "output": "{}"}
        await ws.send_json({"type": "conversation.item.create", "item": output})
        say = 'Say exactly this, word for word: "Goodbye now."'
        await ws.send_json({"type": "response.create", "response": {"instructions": say}})
        said = await until(ws, "response.done")

    assert arguments["name"] == "end_call" and arguments["arguments"] == "{}"
    assert called[-1]["response"]["output"][0]["type"] == "function_call"
    assert audio_of(said) == pcm_to_ulaw(synthesize("Goodbye now.", 8000).pcm)


async def test_bad_client_events_get_error_events_naming_the_problem_and_the_session_goes_on():
    async with OpenAIRealtimeStandIn() as stand_in, aiohttp.ClientSession() as http:
        ws = await connect(http, stand_in, mulaw_session())
        await ws.send_json({"type": "input_audio_buffer.commit", "event_id": "empty"})
        await ws.send_json({"type": "no.such.event", "event_id": "unknown"})
        await ws.send_str("not json")
        pcma = mulaw_session()
        pcma["session"]["audio"]["input"]["format"] = {"type": "audio/pcma"}
        await ws.send_json(pcma | {"event_id": "pcma"})
        await ws.send_json({"type": "conversation.item.truncate", "event_id": "no-item-id"})
        errors = [(await receive(ws))["error"] for _ in range(5)]
        await ws.send_json(mulaw_session(instructions="Be brief."))
        updated = await receive(ws)

    assert [(e["code"], e["event_id"]) for e in errors] == [
        ("input_audio_buffer_commit_empty", "empty"),
        ("invalid_value", "unknown"),
        ("invalid_json", None),
        ("invalid_value", "pcma"),
        ("invalid_value", "no-item-id"),
    ]
    assert "buffer too small" in errors[0]["message"]
    assert errors[4]["message"] == "Invalid 'audio_end_ms': Field required."
    assert updated["session"]["instructions"] == "Be brief."
