"""Cartesia streaming TTS stand-in: WebSocket `/tts/websocket`, contexts, word timestamps, cancel.

The handshake carries the key (`X-API-Key` header, as pipecat sends it, or `?api_key=`) and the
API version (`Cartesia-Version` header or `?cartesia_version=`, the query winning). Each text
message is a generation request, `{"transcript", "continue", "context_id", "model_id",
"voice": {"mode": "id", "id"}, "output_format": {"container": "raw", "encoding":
"pcm_s16le", "sample_rate"}, "add_timestamps", "language", "max_buffer_delay_ms", …}`, or
`{"context_id", "cancel": true}`. A context's transcripts are concatenated verbatim and spoken
in the deterministic voice of `speech.synthesize`, as `chunk` messages of base64 audio, each
word preceded by a `timestamps` message (seconds from the start of the context's audio); a
request with `continue: false` ends the context with `done`. `max_buffer_delay_ms: 0` speaks
each transcript as it arrives; otherwise text waits for the end of a sentence or that many
milliseconds. `cancel` stops a context at once: nothing more is sent for it. Invalid requests
are answered with Cartesia's `error` message (`title`, `message`, `error_code`).
"""

import asyncio
import base64
import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import WSMsgType, web
from loguru import logger

from standins.http_server import LocalServer
from standins.speech import synthesize

SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
DEFAULT_BUFFER_DELAY_MS = 3000
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*\s*$")
# Fields a context's later inputs must repeat unchanged.
_FIXED = ("model_id", "voice", "output_format", "language", "add_timestamps")


@dataclass
class CartesiaContext:
    """One context: the requests that fed it and what it was answered."""

    context_id: str
    settings: dict  # the _FIXED fields of its first request
    transcripts: list[str] = field(default_factory=list)
    words: list[tuple[str, float, float]] = field(default_factory=list)  # timestamps sent
    audio_bytes: int = 0
    first_audio_at: float | None = None  # time.monotonic() of its first chunk
    done: bool = False
    cancelled: bool = False

    @property
    def text(self) -> str:
        """Everything it was given to say."""
        return "".join(self.transcripts)


@dataclass
class CartesiaConnection:
    """What one `/tts/websocket` connection carried, for tests to assert on."""

    api_key: str
    version: str
    requests: list[dict] = field(default_factory=list)  # every text message received, parsed
    contexts: dict[str, CartesiaContext] = field(default_factory=dict)
    cancels: list[str] = field(default_factory=list)  # context ids, in order
    sent: list[dict] = field(default_factory=list)  # every message sent but chunks
    closed: bool = False


class _Invalid(Exception):
    """A request Cartesia answers with an `error` message."""

    def __init__(self, title: str, message: str, code: str):
        super().__init__(message)
        self.title, self.code = title, code


class _Speaker:
    """Speaks one context: its inputs in order, on a task that `cancel()` stops at once."""

    def __init__(self, ws: web.WebSocketResponse, server: "CartesiaTTSStandIn", ctx, conn):
        self.ws, self.server, self.ctx, self.conn = ws, server, ctx, conn
        self.rate = ctx.settings["output_format"]["sample_rate"]
        self.inputs: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()  # (text, last)
        self.position = 0  # samples of audio sent for the context
        self.task = asyncio.create_task(self._run())

    async def cancel(self) -> None:
        """The client cancelled the context: stop at once, nothing more is sent for it."""
        self.ctx.cancelled = not self.ctx.done
        await self.stop()

    async def stop(self) -> None:
        """Stop the task and wait until it can send nothing more."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        try:
            await asyncio.sleep(self.server.ttfb)
            while True:
                text, last = await self.inputs.get()
                await self._speak(text)
                if last:
                    self.ctx.done = True
                    await self._send({"type": "done", "done": True, "status_code": 206})
                    return
        except ConnectionResetError:
            logger.debug("Cartesia stand-in: the client left while audio was streaming")

    async def _speak(self, text: str) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        timed = self.server.timestamps and self.ctx.settings["add_timestamps"]
        for word in text.split():
            speech = await asyncio.to_thread(synthesize, word, self.rate)
            pcm, (timing,) = speech.pcm, speech.words
            stamp = self._timestamps(word, timing) if timed else None
            if stamp and self.server.timestamps == "before":
                await self._send(stamp)
            size = self.rate * self.server.chunk_ms // 1000 * 2
            for i in range(0, len(pcm), size):
                await self._chunk(pcm[i : i + size])
                pace = self.server.realtime_factor
                due += len(pcm[i : i + size]) / 2 / self.rate / pace if pace else 0.0
                await asyncio.sleep(max(due - loop.time(), 0.0))  # lets a cancel in
            if stamp and self.server.timestamps == "after":
                await self._send(stamp)
            self.position += len(pcm) // 2

    def _timestamps(self, word: str, timing) -> dict:
        start = round(self.position / self.rate + timing.start_s, 4)
        end = round(self.position / self.rate + timing.end_s, 4)
        self.ctx.words.append((word, start, end))
        stamps = {"words": [word], "start": [start], "end": [end]}
        return {"type": "timestamps", "done": False, "status_code": 206, "word_timestamps": stamps}

    async def _chunk(self, audio: bytes) -> None:
        self.ctx.first_audio_at = self.ctx.first_audio_at or time.monotonic()
        message = {
            "type": "chunk",
            "data": base64.b64encode(audio).decode(),
            "done": False,
            "status_code": 206,
            "step_time": 12.5,
            "context_id": self.ctx.context_id,
        }
        await self.ws.send_str(json.dumps(message))
        self.ctx.audio_bytes += len(audio)

    async def _send(self, message: dict) -> None:
        message = {**message, "context_id": self.ctx.context_id}
        await self.ws.send_str(json.dumps(message))
        self.conn.sent.append(message)


class _Buffer:
    """A context's text not yet spoken: released at a sentence end, its last input or a delay."""

    def __init__(self, speaker: _Speaker, delay_ms: int) -> None:
        self.speaker, self.delay_ms, self.text = speaker, delay_ms, ""
        self.timer: asyncio.Task | None = None

    def add(self, text: str, last: bool) -> None:
        self.text += text
        if last or self.delay_ms == 0 or _SENTENCE_END.search(self.text):
            self.release(last)
        elif self.text.strip() and not self.timer:
            self.timer = asyncio.create_task(self._release_later())

    def drop(self) -> None:
        """Forget the text not spoken yet."""
        if self.timer:
            self.timer.cancel()
            self.timer = None
        self.text = ""

    def release(self, last: bool = False) -> None:
        text = self.text
        self.drop()
        if text or last:
            self.speaker.inputs.put_nowait((text, last))

    async def _release_later(self) -> None:
        await asyncio.sleep(self.delay_ms / 1000)
        self.timer = None
        self.release()


class CartesiaTTSStandIn(LocalServer):
    """Cartesia's streaming text-to-speech WebSocket, served on 127.0.0.1.

    Knobs: `ttfb` seconds from a context's first input to its first audio; `chunk_ms` of audio
    per `chunk`; `realtime_factor` (None: as fast as possible; 1.0: real time); `timestamps`
    ("before": each word's timestamps ahead of its audio, "after": behind it, None: none, as a
    model without timestamps); `connect_delay` seconds before the handshake completes;
    `api_key` to accept only that key. Tests read `connections` and `refused` (HTTP statuses of
    refused upgrades).
    """

    def __init__(
        self,
        *,
        ttfb: float = 0.0,
        chunk_ms: int = 40,
        realtime_factor: float | None = None,
        timestamps: Literal["before", "after"] | None = "before",
        connect_delay: float = 0.0,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.ttfb, self.chunk_ms, self.realtime_factor = ttfb, chunk_ms, realtime_factor
        self.timestamps, self.connect_delay, self.api_key = timestamps, connect_delay, api_key
        self.connections: list[CartesiaConnection] = []
        self.refused: list[int] = []

    def routes(self) -> list[web.RouteDef]:
        """Serve `/tts/websocket`."""
        return [web.get("/tts/websocket", self._websocket)]

    @property
    def contexts(self) -> list[CartesiaContext]:
        """Every context of every connection, in order."""
        return [ctx for conn in self.connections for ctx in conn.contexts.values()]

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        conn = self._accept(request)
        if isinstance(conn, web.Response):
            self.refused.append(conn.status)
            return conn
        await asyncio.sleep(self.connect_delay)
        ws = web.WebSocketResponse(compress=False)  # cancelling a compressed send is not safe
        await ws.prepare(request)
        self.connections.append(conn)
        speakers: dict[str, tuple[_Speaker, _Buffer]] = {}
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._handle(ws, conn, speakers, message.data)
        except ConnectionResetError:
            logger.debug("Cartesia stand-in: the client left")
        finally:
            for speaker, buffer in speakers.values():
                buffer.drop()
                await speaker.stop()
            await ws.close()
            conn.closed = True
        return ws

    def _accept(self, request: web.Request) -> CartesiaConnection | web.Response:
        """The connection's record, or the HTTP answer refusing the upgrade."""
        key = request.query.get("api_key") or request.headers.get("X-API-Key", "")
        scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
        key = key or (bearer if scheme == "Bearer" else "")
        if not key or (self.api_key is not None and key != self.api_key):
            return _refuse(401, "Unauthorized", "Invalid or missing API key.")
        version = request.query.get("cartesia_version") or request.headers.get("Cartesia-Version")
        if not version or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", version):
            return _refuse(400, "Bad Request", "A Cartesia-Version (YYYY-MM-DD) is required.")
        return CartesiaConnection(api_key=key, version=version)

    async def _handle(self, ws, conn: CartesiaConnection, speakers: dict, data: str) -> None:
        try:
            request = json.loads(data)
        except ValueError:
            request = None
        conn.requests.append(request if isinstance(request, dict) else {"invalid": data})
        context_id = request.get("context_id", "") if isinstance(request, dict) else ""
        try:
            if not isinstance(request, dict):
                raise _Invalid("Invalid request", "The message is not a JSON object.", "invalid")
            if request.get("cancel"):
                await _cancel(conn, speakers, str(context_id))
            else:
                self._generate(ws, conn, speakers, request)
        except _Invalid as e:
            error = {
                "type": "error",
                "done": True,
                "status_code": 400,
                "title": e.title,
                "message": str(e),
                "error_code": e.code,
                "context_id": context_id,
            }
            await ws.send_str(json.dumps(error))
            conn.sent.append(error)

    def _generate(self, ws, conn: CartesiaConnection, speakers: dict, request: dict) -> None:
        _check(request)
        context_id = str(request.get("context_id") or "")
        if not context_id:
            raise _Invalid("Invalid request", "context_id is required.", "invalid_context_id")
        ctx = conn.contexts.get(context_id)
        settings = {name: request.get(name) for name in _FIXED}
        if ctx is None:
            ctx = conn.contexts[context_id] = CartesiaContext(context_id, settings)
            delay = request.get("max_buffer_delay_ms", DEFAULT_BUFFER_DELAY_MS)
            speaker = _Speaker(ws, self, ctx, conn)
            speakers[context_id] = (speaker, _Buffer(speaker, delay))
        elif ctx.done or ctx.cancelled:
            raise _Invalid("Context closed", f"Context {context_id} is done.", "context_closed")
        elif settings != ctx.settings:
            message = f"Inputs on one context must keep {', '.join(_FIXED)} the same."
            raise _Invalid("Invalid request", message, "context_settings_changed")
        transcript = str(request.get("transcript", ""))
        ctx.transcripts.append(transcript)
        speakers[context_id][1].add(transcript, last=not request.get("continue", False))


async def _cancel(conn: CartesiaConnection, speakers: dict, context_id: str) -> None:
    conn.cancels.append(context_id)
    if context_id in speakers:
        speaker, buffer = speakers.pop(context_id)
        buffer.drop()
        await speaker.cancel()


def _check(request: dict) -> None:
    """Raise the error Cartesia answers an invalid generation request with, if any."""
    if not request.get("model_id"):
        raise _Invalid("Invalid model", "model_id is required.", "model_not_found")
    voice = request.get("voice")
    if not isinstance(voice, dict) or voice.get("mode") != "id" or not voice.get("id"):
        raise _Invalid("Invalid voice", "voice must be {mode: id, id: <voice id>}.", "bad_voice")
    output = request.get("output_format")
    if not isinstance(output, dict) or output.get("container") != "raw":
        raise _Invalid("Invalid output format", "container must be raw.", "bad_output_format")
    if output.get("encoding") != "pcm_s16le":
        message = "This stand-in encodes pcm_s16le only."
        raise _Invalid("Invalid output format", message, "bad_output_format")
    if output.get("sample_rate") not in SAMPLE_RATES:
        message = f"sample_rate must be one of {', '.join(map(str, SAMPLE_RATES))}."
        raise _Invalid("Invalid output format", message, "bad_output_format")


def _refuse(status: int, title: str, message: str) -> web.Response:
    body = {"title": title, "message": message, "error_code": title.lower().replace(" ", "_")}
    return web.json_response(body, status=status)
