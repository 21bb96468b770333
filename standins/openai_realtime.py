"""OpenAI Realtime stand-in: WebSocket `/v1/realtime` (the GA protocol), a part of the OpenAI host.

The caller's audio is appended to an input buffer, in the format the session declares (`audio/pcmu`:
8 kHz μ-law, or `audio/pcm`: 24 kHz 16-bit). A commit (the client's, or the stand-in's server VAD
when the session has turn detection on) transcribes the buffer with `speech.Recognizer`, and a
response speaks the responder's reply (`scripted_reply`) in the `speech.synthesize` voice, in the
session's output format. Client events are handled one at a time, in order, as the real server
does; a reply streams from a task, so `response.cancel` and `conversation.item.truncate` are read
while it plays. Instructions of the form `Say exactly …: "<text>"` make a response say <text>.
"""

import asyncio
import base64
import contextlib
import inspect
import json
import re
import time
import typing
import uuid
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from loguru import logger
from openai.types.realtime import RealtimeClientEvent
from pydantic import ValidationError

from recordings import RECORDINGS
from standins.http_server import LocalServer
from standins.openai_replies import Reply, Responder, ToolCall, scripted_reply
from standins.speech import Recognizer, is_speech, synthesize
from telephony.mulaw import pcm_to_ulaw, ulaw_to_pcm

DEFAULT_TRANSCRIPTS = RECORDINGS / "transcripts.txt"
DEFAULT_INSTRUCTIONS = "You are a helpful, witty, and friendly AI."
RATES = {"audio/pcmu": 8000, "audio/pcm": 24000}
BYTES_PER_MS = {"audio/pcmu": 8, "audio/pcm": 48}
MIN_COMMIT_MS = 100
_VERBATIM = re.compile(r'^\s*say exactly\b[^"]*"(?P<text>.+)"\s*$', re.IGNORECASE | re.DOTALL)
# The client events the API takes, as OpenAI's own SDK types them, by `type`.
_CLIENT_EVENTS = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(RealtimeClientEvent)[0])
}
_SERVER_VAD = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


@dataclass
class Commit:
    """One committed input buffer: the user item it became and what it said."""

    item_id: str
    audio: bytes = field(repr=False)  # exactly as appended, in `format`
    format: str
    transcript: str


@dataclass
class Truncation:
    """A `conversation.item.truncate`: where the client says playback of an item stopped."""

    item_id: str
    content_index: int
    audio_end_ms: int
    audio_ms: float  # the item's audio sent by then
    heard: str  # the item's transcript now: the words whose middle is before audio_end_ms


@dataclass
class ResponseRecord:
    """One response: what it was asked and said, and how it ended."""

    id: str
    instructions: str | None
    reply: Reply
    modalities: list[str]
    format: str
    item_id: str | None = None  # its message item
    output: list[str] = field(default_factory=list)  # ids of its output items, in order
    status: str = "in_progress"
    reason: str | None = None  # for a cancelled one: client_cancelled or turn_detected
    audio: bytearray = field(default_factory=bytearray, repr=False)  # as sent, in `format`
    words_sent: int = 0
    word_mids_ms: list[float] = field(default_factory=list)  # where each word sent is, mid-way

    @property
    def audio_ms(self) -> float:
        """Audio sent so far (ms)."""
        return len(self.audio) / BYTES_PER_MS[self.format]


@dataclass
class RealtimeConnection:
    """What one `/v1/realtime` connection carried, for tests to assert on."""

    query: dict[str, str]
    authorization: str
    session: dict
    session_updates: list[dict] = field(default_factory=list)  # each `session`, as received
    audio: bytearray = field(default_factory=bytearray, repr=False)  # every appended byte
    appends: int = 0
    commits: list[Commit] = field(default_factory=list)
    clears: int = 0
    responses: list[ResponseRecord] = field(default_factory=list)
    cancels: list[str | None] = field(default_factory=list)  # the response each stopped
    truncations: list[Truncation] = field(default_factory=list)
    received: list[dict] = field(default_factory=list)  # client events (audio: its size)
    sent: list[dict] = field(default_factory=list)  # server events (audio: its size)
    closed: bool = False

    def sent_of(self, kind: str) -> list[dict]:
        """The server events of one type that were sent, e.g. "response.done"."""
        return [event for event in self.sent if event["type"] == kind]

    @property
    def errors(self) -> list[dict]:
        """The `error` of every error event sent."""
        return [event["error"] for event in self.sent_of("error")]


def _refuse(status: int, message: str, code: str | None) -> web.Response:
    """A refused upgrade, with OpenAI's JSON error body."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return web.json_response({"error": error}, status=status)


def _default_session(model: str) -> dict:
    pcm = {"type": "audio/pcm", "rate": 24000}
    audio_in = {"format": pcm, "transcription": None, "noise_reduction": None}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": _id("sess"),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "audio": {
            "input": audio_in | {"turn_detection": dict(_SERVER_VAD)},
            "output": {"format": dict(pcm), "voice": "alloy", "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "prompt": None,
        "expires_at": int(time.time()) + 3600,
        "include": None,
    }


def _decode(audio: bytes, fmt: str) -> bytes:
    """16-bit PCM of audio in a session format (at that format's rate)."""
    return ulaw_to_pcm(audio) if fmt == "audio/pcmu" else audio[: len(audio) // 2 * 2]


def _encode(pcm: bytes, fmt: str) -> bytes:
    return pcm_to_ulaw(pcm) if fmt == "audio/pcmu" else pcm


def _usage(prompt: int, completion: int, audio: int) -> dict:
    details = {"text_tokens": completion - audio, "audio_tokens": audio}
    cached = {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
    return {
        "total_tokens": prompt + completion,
        "input_tokens": prompt,
        "output_tokens": completion,
        "input_token_details": {
            "cached_tokens": 0,
            "text_tokens": prompt,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens_details": cached,
        },
        "output_token_details": details,
    }


class _Session:
    """One connection: client events in order, responses streamed from a task."""

    def __init__(self, ws: web.WebSocketResponse, conn: RealtimeConnection, server):
        self.ws, self.conn, self.server = ws, conn, server
        self.items: list[dict] = []  # the conversation
        self.buffer = bytearray()  # the input audio buffer, in the input format
        self.buffer_start_ms = 0.0  # where the buffer starts in all audio appended
        self.appended_ms = 0.0
        self.response: ResponseRecord | None = None  # the active one
        self.task: asyncio.Task | None = None
        self.sent_audio_out = False
        self._due = 0.0  # when the reply's audio sent so far is due, at realtime_factor
        self._send_lock = asyncio.Lock()
        self._vad_pcm = bytearray()  # audio not yet seen by the server VAD (PCM)
        self._speech: dict | None = None  # server VAD: {"item_id", "start_ms", "silent_ms"}

    # -- sending ---------------------------------------------------------------------------

    async def send(self, event: dict) -> None:
        """Send one server event, with an event_id, and record it."""
        event = {"event_id": _id("event"), **event}
        text = json.dumps(event)
        async with self._send_lock:
            await self.ws.send_str(text)
        if event["type"] == "response.output_audio.delta":
            self.conn.sent.append(event | {"delta": len(base64.b64decode(event["delta"]))})
        else:
            self.conn.sent.append(json.loads(text))  # as sent: items change later

    async def error(self, message: str, code: str | None, event_id=None, param=None) -> None:
        """Send an error event, as the server does for a client event it cannot act on."""
        error = {"type": "invalid_request_error", "code": code, "message": message}
        await self.send({"type": "error", "error": error | {"param": param, "event_id": event_id}})

    # -- client events ---------------------------------------------------------------------

    async def handle(self, event: dict) -> None:
        """Act on one client event, or answer an error naming what is wrong with it."""
        kind, event_id = event.get("type"), event.get("event_id")
        handler = getattr(self, "on_" + str(kind).replace(".", "_"), None)
        if kind not in _CLIENT_EVENTS or handler is None:
            await self.error(
                f"Invalid value: '{kind}'. Unknown event type.", "invalid_value", event_id, "type"
            )
            return
        try:
            _CLIENT_EVENTS[kind].model_validate(event)
        except ValidationError as e:
            problem = e.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            message = f"Invalid '{where}': {problem['msg']}."
            await self.error(message, "invalid_value", event_id, where)
            return
        await handler(event)

    async def on_session_update(self, event: dict) -> None:
        session = event.get("session")
        self.conn.session_updates.append(session)
        if not isinstance(session, dict) or session.get("type") != "realtime":
            await self.error(
                "Missing required parameter: 'session.type'.",
                "missing_required_parameter",
                event.get("event_id"),
                "session.type",
            )
            return
        problem = self._format_problem(session)
        if problem:
            await self.error(problem, "invalid_value", event.get("event_id"), "session.audio")
            return
        _merge(self.conn.session, session)
        detection = self.conn.session["audio"]["input"].get("turn_detection")
        if detection and detection.get("type") == "server_vad":
            self.conn.session["audio"]["input"]["turn_detection"] = _SERVER_VAD | detection
        await self.send({"type": "session.updated", "session": self.conn.session})

    def _format_problem(self, session: dict) -> str | None:
        audio = session.get("audio") or {}
        for way in ("input", "output"):
            fmt = (audio.get(way) or {}).get("format")
            if fmt and fmt.get("type") not in RATES:
                return (
                    f"This stand-in serves audio/pcm and audio/pcmu only, not {fmt.get('type')!r}."
                )
            if fmt and fmt.get("type") == "audio/pcm" and fmt.get("rate", 24000) != 24000:
                return "Invalid value for audio/pcm: only a 24kHz sample rate is supported."
        voice = (audio.get("output") or {}).get("voice")
        current = self.conn.session["audio"]["output"]["voice"]
        if voice and voice != current and self.sent_audio_out:
            return "Cannot update a conversation's voice if assistant audio is present."
        return None

    async def on_input_audio_buffer_append(self, event: dict) -> None:
        try:
            audio = base64.b64decode(str(event.get("audio", "")), validate=True)
        except ValueError:
            await self.error(
                "Invalid 'audio': not valid base64.",
                "invalid_value",
                event.get("event_id"),
                "audio",
            )
            return
        self.conn.audio += audio
        self.conn.appends += 1
        self.buffer += audio
        self.appended_ms += len(audio) / BYTES_PER_MS[self.input_format]
        if self.turn_detection:
            await self._detect_turns(_decode(audio, self.input_format))

    async def on_input_audio_buffer_clear(self, event: dict) -> None:
        self._clear_buffer()
        self.conn.clears += 1
        await self.send({"type": "input_audio_buffer.cleared"})

    async def on_input_audio_buffer_commit(self, event: dict) -> None:
        await self._commit(self._speech["item_id"] if self._speech else _id("item"), event)

    async def on_conversation_item_create(self, event: dict) -> None:
        item = dict(event.get("item") or {})
        if item.get("type") not in ("message", "function_call", "function_call_output"):
            await self.error(
                "Invalid 'item.type'.", "invalid_value", event.get("event_id"), "item.type"
            )
            return
        item.setdefault("id", _id("item"))
        item |= {"object": "realtime.item", "status": "completed"}
        await self._add_item(item)

    async def on_conversation_item_delete(self, event: dict) -> None:
        item = self._item(event.get("item_id"))
        if item is None:
            await self._no_item(event)
            return
        self.items.remove(item)
        await self.send({"type": "conversation.item.deleted", "item_id": item["id"]})

    async def on_conversation_item_retrieve(self, event: dict) -> None:
        item = self._item(event.get("item_id"))
        if item is None:
            await self._no_item(event)
            return
        await self.send({"type": "conversation.item.retrieved", "item": item})

    async def on_conversation_item_truncate(self, event: dict) -> None:
        item = self._item(event.get("item_id"))
        response = next((r for r in self.conn.responses if r.item_id == event.get("item_id")), None)
        if item is None or response is None or item.get("role") != "assistant":
            await self._no_item(event)
            return
        end_ms = int(event.get("audio_end_ms", -1))
        if not 0 <= end_ms <= response.audio_ms:
            message = (
                f"Audio content of {response.audio_ms:.0f}ms is already shorter than {end_ms}ms"
            )
            await self.error(message, "invalid_value", event.get("event_id"), "audio_end_ms")
            return
        words = response.reply.text.split()
        heard = " ".join(
            w for w, mid in zip(words, response.word_mids_ms, strict=False) if mid < end_ms
        )
        item["content"] = [{"type": "output_audio", "transcript": heard}]
        index = int(event.get("content_index", 0))
        self.conn.truncations.append(
            Truncation(item["id"], index, end_ms, response.audio_ms, heard)
        )
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item["id"],
                "content_index": index,
                "audio_end_ms": end_ms,
            }
        )

    async def on_response_create(self, event: dict) -> None:
        if self.response is not None:
            message = (
                f"Conversation already has an active response in progress: "
                f"{self.response.id}. Wait until the response is finished before "
                "creating a new one."
            )
            await self.error(
                message, "conversation_already_has_active_response", event.get("event_id")
            )
            return
        await self._respond(event.get("response") or {})

    async def on_response_cancel(self, event: dict) -> None:
        if self.response is None:
            self.conn.cancels.append(None)
            await self.error(
                "Cancellation failed: no active response found",
                "response_cancel_not_active",
                event.get("event_id"),
            )
            return
        await self._cancel("client_cancelled")

    # -- the input buffer and the server VAD ---------------------------------------------

    @property
    def input_format(self) -> str:
        return self.conn.session["audio"]["input"]["format"]["type"]

    @property
    def turn_detection(self) -> dict | None:
        return self.conn.session["audio"]["input"].get("turn_detection")

    def _clear_buffer(self) -> None:
        self.buffer.clear()
        self.buffer_start_ms = self.appended_ms
        self._speech = None

    async def _detect_turns(self, pcm: bytes) -> None:
        """Server VAD: 20 ms frames louder than `speech.SPEECH_DB` are speech."""
        rate = RATES[self.input_format]
        size = rate // 50 * 2
        self._vad_pcm += pcm
        while len(self._vad_pcm) >= size:
            frame = bytes(self._vad_pcm[:size])
            del self._vad_pcm[:size]
            end_ms = self.appended_ms - len(self._vad_pcm) / 2 / rate * 1000
            await self._vad_frame(is_speech(frame), end_ms)

    async def _vad_frame(self, speech: bool, end_ms: float) -> None:
        detection = self.turn_detection or {}
        if self._speech is None:
            if speech:
                await self._speech_started(end_ms - 20, detection)
            return
        self._speech["silent_ms"] = 0 if speech else self._speech["silent_ms"] + 20
        if self._speech["silent_ms"] >= detection.get("silence_duration_ms", 500):
            item_id = self._speech["item_id"]
            await self.send(
                {
                    "type": "input_audio_buffer.speech_stopped",
                    "audio_end_ms": round(end_ms - self._speech["silent_ms"]),
                    "item_id": item_id,
                }
            )
            start = max(self.buffer_start_ms, self._speech["start_ms"])
            del self.buffer[
                : round((start - self.buffer_start_ms) * BYTES_PER_MS[self.input_format])
            ]
            self.buffer_start_ms = start
            committed = await self._commit(item_id, {})
            if committed and detection.get("create_response", True) and self.response is None:
                await self._respond({})

    async def _speech_started(self, at_ms: float, detection: dict) -> None:
        start = max(0.0, at_ms - detection.get("prefix_padding_ms", 300))
        self._speech = {"item_id": _id("item"), "start_ms": start, "silent_ms": 0}
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": round(start),
                "item_id": self._speech["item_id"],
            }
        )
        if self.response is not None and detection.get("interrupt_response", True):
            await self._cancel("turn_detected")

    async def _commit(self, item_id: str, event: dict) -> bool:
        fmt = self.input_format
        ms = len(self.buffer) / BYTES_PER_MS[fmt]
        if ms < MIN_COMMIT_MS:
            message = (
                "Error committing input audio buffer: buffer too small. Expected at "
                f"least {MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio."
            )
            await self.error(message, "input_audio_buffer_commit_empty", event.get("event_id"))
            return False
        audio = bytes(self.buffer)
        self._clear_buffer()
        heard = await asyncio.to_thread(
            self.server.recognizer.recognize, _decode(audio, fmt), RATES[fmt]
        )
        self.conn.commits.append(Commit(item_id, audio, fmt, heard.transcript))
        previous = self.items[-1]["id"] if self.items else None
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            }
        )
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await self._add_item(item)
        item["content"][0]["transcript"] = heard.transcript  # what the model heard
        if self.conn.session["audio"]["input"].get("transcription"):
            await self._transcribed(item_id, heard.transcript, len(audio) / BYTES_PER_MS[fmt])
        return True

    async def _transcribed(self, item_id: str, transcript: str, ms: float) -> None:
        base = {"item_id": item_id, "content_index": 0}
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.delta",
                **base,
                "delta": transcript,
            }
        )
        usage = {"type": "duration", "seconds": round(ms / 1000, 3)}
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                **base,
                "transcript": transcript,
                "usage": usage,
            }
        )

    # -- the conversation ------------------------------------------------------------------

    def _item(self, item_id) -> dict | None:
        return next((item for item in self.items if item["id"] == item_id), None)

    async def _no_item(self, event: dict) -> None:
        await self.error(
            f"Item with item_id '{event.get('item_id')}' not found.",
            "item_not_found",
            event.get("event_id"),
            "item_id",
        )

    async def _add_item(self, item: dict, *, done: bool = True) -> None:
        """Add an item: `added`, and `done` too unless a response is still producing it."""
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        await self.send(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": item}
        )
        if done:
            await self.send(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
            )

    def chat_messages(self) -> list[dict]:
        """The conversation as chat-completions messages (what the responder reads)."""
        messages = [{"role": "system", "content": self.conn.session.get("instructions") or ""}]
        for item in self.items:
            if item["type"] == "function_call":
                call = {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]},
                }
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            elif item["type"] == "function_call_output":
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": item.get("call_id"),
                        "content": item.get("output"),
                    }
                )
            else:
                parts = item.get("content") or []
                text = " ".join(p.get("transcript") or p.get("text") or "" for p in parts)
                messages.append({"role": item.get("role", "user"), "content": text.strip()})
        return messages

    def chat_tools(self, tools: list[dict] | None) -> list[dict] | None:
        """Realtime function tools in chat-completions form, or None when there are none."""
        functions = [t for t in tools or [] if t.get("type") == "function"]
        return [
            {"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
            for t in functions
        ] or None

    # -- responses -------------------------------------------------------------------------

    async def _respond(self, params: dict) -> None:
        session = self.conn.session
        instructions = params.get("instructions")
        verbatim = _VERBATIM.match(instructions or "")
        if verbatim:
            reply = Reply(text=verbatim["text"])
        else:
            tools = self.chat_tools(params.get("tools", session.get("tools")))
            reply = self.server.responder(self.chat_messages(), tools)
            reply = await reply if inspect.isawaitable(reply) else reply
        modalities = params.get("output_modalities") or session.get("output_modalities")
        fmt = session["audio"]["output"]["format"]["type"]
        response = ResponseRecord(_id("resp"), instructions, reply, modalities or ["audio"], fmt)
        self.conn.responses.append(response)
        self.response = response
        await self.send({"type": "response.created", "response": self._resource(response)})
        self.task = asyncio.create_task(self._stream(response), name="realtime-standin-reply")

    def _resource(self, response: ResponseRecord) -> dict:
        """The response object, as `response.created` and `response.done` carry it."""
        output = self.conn.session["audio"]["output"]
        details = None
        if response.status == "cancelled":
            details = {"type": "cancelled", "reason": response.reason}
        items = [self._item(item_id) for item_id in response.output]
        return {
            "id": response.id,
            "object": "realtime.response",
            "status": response.status,
            "status_details": details,
            "output": [item for item in items if item],
            "conversation_id": "conv_standin",
            "output_modalities": response.modalities,
            "max_output_tokens": "inf",
            "audio": {"output": {"format": output["format"], "voice": output["voice"]}},
            "usage": None,
            "metadata": None,
        }

    async def _stream(self, response: ResponseRecord) -> None:
        try:
            await asyncio.sleep(self.server.ttfb)
            if response.reply.text or not response.reply.tool_calls:
                await self._speak(response)
            for call in response.reply.tool_calls:
                await self._call(response, call)
            await self._finish(response, "completed")
        except ConnectionResetError:
            logger.debug("OpenAI Realtime stand-in: the client left while a reply streamed")

    async def _speak(self, response: ResponseRecord) -> None:
        """The reply's message item: a transcript delta, then the audio, word by word."""
        item = {
            "id": _id("item"),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        response.item_id = item["id"]
        where = await self._open_item(response, item)
        audio = "audio" in response.modalities
        part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        where |= {"item_id": item["id"], "content_index": 0}
        await self.send({"type": "response.content_part.added", **where, "part": part})
        words = response.reply.text.split()
        kind = "response.output_audio_transcript.delta" if audio else "response.output_text.delta"
        for i, word in enumerate(words):
            await self.send(
                {"type": kind, **where, "delta": word if i == len(words) - 1 else word + " "}
            )
            if audio:
                await self._say_word(response, word, where)
            response.words_sent += 1
        await self._content_done(response, item)
        await self._item_done(response, item)

    async def _open_item(self, response: ResponseRecord, item: dict) -> dict:
        """Announce an output item of the response; returns its place in the response."""
        where = {"response_id": response.id, "output_index": len(response.output)}
        response.output.append(item["id"])
        await self.send({"type": "response.output_item.added", **where, "item": item})
        await self._add_item(item, done=False)
        return where

    async def _item_done(self, response: ResponseRecord, item: dict) -> None:
        item["status"] = "incomplete" if response.status == "cancelled" else "completed"
        where = {"response_id": response.id, "output_index": response.output.index(item["id"])}
        await self.send({"type": "response.output_item.done", **where, "item": item})
        await self.send({"type": "conversation.item.done", "item": item})

    async def _say_word(self, response: ResponseRecord, word: str, where: dict) -> None:
        """Stream one word's audio in chunk_ms deltas, paced at realtime_factor if set.

        Words are synthesized one by one: together they are `synthesize(text)`.
        """
        fmt = response.format
        spoken = await asyncio.to_thread(synthesize, word, RATES[fmt])
        timing = spoken.words[0]
        response.word_mids_ms.append(response.audio_ms + (timing.start_s + timing.end_s) * 500)
        audio = _encode(spoken.pcm, fmt)
        size = BYTES_PER_MS[fmt] * self.server.chunk_ms
        loop = asyncio.get_running_loop()
        for i in range(0, len(audio), size):
            chunk = audio[i : i + size]
            if not response.audio:
                self._due = loop.time()
            delta = base64.b64encode(chunk).decode("ascii")
            await self.send({"type": "response.output_audio.delta", **where, "delta": delta})
            response.audio += chunk
            self.sent_audio_out = True
            pace = self.server.realtime_factor
            self._due += len(chunk) / BYTES_PER_MS[fmt] / 1000 / pace if pace else 0.0
            # Sleeping (at least yielding) between deltas lets a cancel be read mid-reply.
            await asyncio.sleep(max(self._due - loop.time(), 0.0))

    async def _content_done(self, response: ResponseRecord, item: dict) -> None:
        """The message's content is final: what was said of it (all of it unless cancelled)."""
        said = " ".join(response.reply.text.split()[: response.words_sent])
        where = {
            "response_id": response.id,
            "output_index": 0,
            "item_id": item["id"],
            "content_index": 0,
        }
        if "audio" in response.modalities:
            await self.send({"type": "response.output_audio.done", **where})
            await self.send(
                {"type": "response.output_audio_transcript.done", **where, "transcript": said}
            )
            item["content"] = [{"type": "output_audio", "transcript": said}]
            part = {"type": "audio", "transcript": said}
        else:
            await self.send({"type": "response.output_text.done", **where, "text": said})
            item["content"] = [{"type": "output_text", "text": said}]
            part = {"type": "text", "text": said}
        await self.send({"type": "response.content_part.done", **where, "part": part})

    async def _call(self, response: ResponseRecord, call: ToolCall) -> None:
        """A function call item: its arguments in one delta, then done."""
        arguments = json.dumps(call.arguments, separators=(",", ":"))
        item = {
            "id": _id("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": _id("call"),
            "name": call.name,
            "arguments": "",
        }
        where = await self._open_item(response, item)
        ids = {**where, "item_id": item["id"], "call_id": item["call_id"]}
        await self.send(
            {"type": "response.function_call_arguments.delta", **ids, "delta": arguments}
        )
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "name": call.name,
                "arguments": arguments,
            }
        )
        item["arguments"] = arguments
        await self._item_done(response, item)

    async def _finish(self, response: ResponseRecord, status: str, reason: str | None = None):
        """`response.done`: the active response has ended."""
        response.status, response.reason = status, reason
        resource = self._resource(response)
        prompt = sum(len(m["content"] or "") for m in self.chat_messages()) // 4
        resource["usage"] = _usage(prompt, 2 * response.words_sent, response.words_sent)
        self.response = None
        await self.send({"type": "response.done", "response": resource})

    async def _cancel(self, reason: str) -> None:
        """Stop the active response where it is and end it as cancelled."""
        response = self.response
        assert response is not None
        self.conn.cancels.append(response.id)
        await self.stop()
        response.status = "cancelled"
        for item_id in response.output:
            item = self._item(item_id)
            if item and item["status"] == "in_progress":
                if item["type"] == "message":
                    await self._content_done(response, item)
                await self._item_done(response, item)
        await self._finish(response, "cancelled", reason)

    async def stop(self) -> None:
        """Cancel the streaming task and wait until it can send nothing more."""
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


def _merge(into: dict, update: dict) -> None:
    """session.update semantics: only the fields present change; audio is merged per field."""
    for key, value in update.items():
        if key == "audio" and isinstance(value, dict):
            for way in ("input", "output"):
                into["audio"][way].update(value.get(way) or {})
        else:
            into[key] = value


class OpenAIRealtimeStandIn(LocalServer):
    """OpenAI's Realtime WebSocket (`/v1/realtime?model=…`), served as a part of the OpenAI host.

    Knobs (plain attributes, may change between calls): `responder` (default
    `scripted_reply`), `api_key` (None: any bearer key is accepted; a wrong one gets the
    server's `invalid_api_key` error and a close), `realtime_factor` (None: audio as fast as
    possible; 1.0: real time), `chunk_ms` of audio per delta, `ttfb` seconds before a reply's
    first event, `recognizer` (default: recordings//transcripts.txt). Tests read `connections`
    (one `RealtimeConnection` each) and `refused` (HTTP statuses of refused upgrades).
    """

    def __init__(
        self,
        *,
        responder: Responder = scripted_reply,
        recognizer: Recognizer | None = None,
        api_key: str | None = None,
        realtime_factor: float | None = None,
        chunk_ms: int = 50,
        ttfb: float = 0.0,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.responder = responder
        self.recognizer = recognizer or Recognizer.from_transcripts(DEFAULT_TRANSCRIPTS)
        self.api_key, self.realtime_factor = api_key, realtime_factor
        self.chunk_ms, self.ttfb = chunk_ms, ttfb
        self.connections: list[RealtimeConnection] = []
        self.refused: list[int] = []

    def routes(self) -> list[web.RouteDef]:
        """Serve `/v1/realtime`."""
        return [web.get("/v1/realtime", self._realtime)]

    def _refusal(self, request: web.Request) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not key.strip():
            return _refuse(401, "You didn't provide an API key.", None)
        if "realtime=v1" in request.headers.get("OpenAI-Beta", ""):
            return _refuse(
                400, "This stand-in speaks the GA Realtime protocol, not the beta.", None
            )
        if not request.query.get("model"):
            return _refuse(
                400, "Missing required parameter: 'model'.", "missing_required_parameter"
            )
        return None

    async def _realtime(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            self.refused.append(refusal.status)
            return refusal
        authorization = request.headers["Authorization"]
        conn = RealtimeConnection(
            dict(request.query), authorization, _default_session(request.query["model"])
        )
        ws = web.WebSocketResponse(compress=False)  # cancelling a compressed send is not safe
        await ws.prepare(request)
        self.connections.append(conn)
        session = _Session(ws, conn, self)
        try:
            if self.api_key is not None and authorization[7:] != self.api_key:
                await self._reject_key(session)
                return ws
            await session.send({"type": "session.created", "session": conn.session})
            await self._receive(ws, session)
        except ConnectionResetError:
            logger.debug("OpenAI Realtime stand-in: the client left")
        finally:
            await session.stop()
            await ws.close()
            conn.closed = True
        return ws

    async def _reject_key(self, session: _Session) -> None:
        await session.error("Incorrect API key provided.", "invalid_api_key")
        await session.ws.close(code=3000, message=b"invalid_request_error.invalid_api_key")

    async def _receive(self, ws: web.WebSocketResponse, session: _Session) -> None:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                await session.error("Binary messages are not supported.", "invalid_value")
                continue
            try:
                event = json.loads(message.data)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                await session.error("Invalid JSON in the client event.", "invalid_json")
                continue
            session.conn.received.append(_recorded(event))
            await session.handle(event)


def _recorded(event: dict) -> dict:
    if event.get("type") == "input_audio_buffer.append":
        return event | {"audio": len(str(event.get("audio", ""))) * 3 // 4}
    return event
