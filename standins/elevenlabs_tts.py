"""ElevenLabs multi-context TTS stand-in: `/v1/text-to-speech/{voice_id}/multi-stream-input`.

The upgrade carries `model_id`, `output_format` (`pcm_<rate>` here), `auto_mode`,
`inactivity_timeout` and others in its query, and the key in an `xi-api-key` header (or in a
context's first message as `xi_api_key`). A wrong key is not refused at the upgrade: the
socket opens and is closed with 1008 (policy violation), as clients report of ElevenLabs (the
key may come in a message, so the upgrade cannot check it). `eleven_v3` cannot use this
endpoint: its upgrade is refused with 403.

Client messages (JSON): a context's first message opens it (`{"text": " ", "context_id",
"voice_settings"}`), `{"text", "context_id"}` adds text, `{"context_id", "flush": true}`
speaks all its text now, `{"context_id", "close_context": true}` closes it, `{"text": "",
"context_id"}` (or `{"text": ""}`) keeps it (or the socket) alive, `{"close_socket": true}`
ends the connection. With `auto_mode=true` text is spoken as it arrives (whole words);
otherwise it waits for `chunk_length_schedule` characters (default 120, 160, 250, 290) or a
flush. A context no input reached for `inactivity_timeout` seconds (default 20) closes.

Server messages: `{"audio", "isFinal": null, "normalizedAlignment", "alignment",
"contextId"}`, several per sentence, whose alignment (`chars`, `charStartTimesMs`,
`charDurationsMs`) is relative to that message's audio and spans exactly its length: a
word's characters share its voiced burst, the space after it covers the silence that follows.
`{"isFinal": true, "contextId"}` ends a closed context. Closing a context cuts its speech
short at once, unless it was flushed since its last text: then its flushed text is spoken
first, as ElevenLabs documents. The audio is `speech.synthesize`'s deterministic voice. More
than five open contexts, or a context's `voice_settings` changed after its first message,
close the socket with 1008 and ElevenLabs' words.
"""

import asyncio
import base64
import contextlib
import json
import re
import time
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from loguru import logger

from standins.http_server import LocalServer
from standins.speech import synthesize

OUTPUT_FORMATS = {f"pcm_{rate}": rate for rate in (8000, 16000, 22050, 24000, 32000, 44100, 48000)}
DEFAULT_SCHEDULE = (120, 160, 250, 290)
DEFAULT_INACTIVITY_SECS = 20
MAX_CONTEXTS = 5
POLICY_VIOLATION = 1008
MAX_REASON_BYTES = 123  # a close frame's reason, as WebSocket allows: longer ones are cut
# ElevenLabs' close reasons, as clients have logged them (pipecat issues #1006, #4114, #4541).
INVALID_KEY = "Invalid API key"
TOO_MANY_CONTEXTS = (
    "Maximum simultaneous contexts per WebSocket connection exceeded (5). "
    "Please close an existing context before opening a new one."
)
VOICE_SETTINGS_CHANGED = (
    "voice_settings field must be provided in the first message and then either be not "
    "provided or not change."
)
_WORD = re.compile(r"(\S+)(\s*)")
_PARTIAL_WORD = re.compile(r"\S*\Z")


@dataclass(frozen=True)
class AlignedChar:
    """One character and the stretch of audio it covers, in ms from its segment's start."""

    char: str
    start_ms: int
    duration_ms: int


@dataclass
class ElevenLabsContext:
    """One context: what fed it, what was spoken, and how it ended."""

    context_id: str
    voice_settings: dict | None
    inputs: list[str] = field(default_factory=list)  # every text message, keep-alives aside
    flushes: int = 0
    alignments: list[dict] = field(default_factory=list)  # each audio message's `alignment`
    words: list[tuple[str, float]] = field(default_factory=list)  # word, start (s) in its audio
    audio_bytes: int = 0
    first_audio_at: float | None = None  # time.monotonic() of its first audio
    closed: bool = False  # close_context (or inactivity) closed it
    cut: bool = False  # closing it stopped its speech short
    final: bool = False  # isFinal was sent

    @property
    def text(self) -> str:
        """Everything it was given to say."""
        return "".join(self.inputs)


@dataclass
class ElevenLabsConnection:
    """What one connection carried, for tests to assert on."""

    voice_id: str
    query: dict[str, str]
    api_key: str
    messages: list[dict] = field(default_factory=list)  # every text message received, parsed
    contexts: list[ElevenLabsContext] = field(default_factory=list)  # in the order opened
    keepalives: int = 0  # `{"text": ""}` messages
    finals: list[str] = field(default_factory=list)  # context ids, in the order isFinal went
    close_code: int | None = None  # the code the stand-in closed with, if it closed first
    close_reason: str = ""
    closed: bool = False

    def context(self, context_id: str) -> ElevenLabsContext:
        """The latest context opened under `context_id`."""
        return next(c for c in reversed(self.contexts) if c.context_id == context_id)


class _Violation(Exception):
    """A message ElevenLabs answers by closing the socket with 1008."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.error = error


def aligned(text: str, sample_rate: int) -> tuple[bytes, list[AlignedChar]]:
    """`text` spoken, and each of its characters timed over the audio.

    A word's characters split its voiced burst evenly (whole milliseconds); the first
    whitespace after it covers the silence up to the next word; a word with no whitespace
    after it keeps that silence on its last character.
    """
    speech = synthesize(text, sample_rate)
    ends = [w.start_s for w in speech.words[1:]] + [speech.duration_s]
    chars: list[AlignedChar] = []
    lead = len(text) - len(text.lstrip())
    chars += [AlignedChar(c, 0, 0) for c in text[:lead]]
    for match, timing, end_s in zip(_WORD.finditer(text), speech.words, ends, strict=True):
        word, space = match.groups()
        start, burst_end, end = (round(t * 1000) for t in (timing.start_s, timing.end_s, end_s))
        bounds = [start + (burst_end - start) * i // len(word) for i in range(len(word))]
        bounds.append(burst_end if space else end)
        spans = zip(word, bounds, bounds[1:], strict=False)
        chars += [AlignedChar(c, a, b - a) for c, a, b in spans]
        if space:
            chars.append(AlignedChar(space[0], burst_end, end - burst_end))
            chars += [AlignedChar(c, end, 0) for c in space[1:]]
    return speech.pcm, chars


def chunked(chars: list[AlignedChar], chunk_ms: int) -> list[list[AlignedChar]]:
    """Characters grouped into audio messages of at least `chunk_ms` (but the last)."""
    chunks: list[list[AlignedChar]] = [[]]
    for char in chars:
        chunk = chunks[-1]
        if chunk and chunk[-1].start_ms + chunk[-1].duration_ms - chunk[0].start_ms >= chunk_ms:
            chunks.append(chunk := [])
        chunk.append(char)
    return [chunk for chunk in chunks if chunk]


class _Speaker:
    """Speaks one context: its committed text in order, on a task that a cut stops at once."""

    def __init__(self, server: "ElevenLabsTTSStandIn", ws, conn, ctx, settings: dict) -> None:
        self.server, self.ws, self.conn, self.ctx = server, ws, conn, ctx
        self.rate: int = settings["rate"]
        self.auto_mode: bool = settings["auto_mode"]
        self.timeout: float = settings["inactivity_timeout"]
        self.schedule: tuple[int, ...] = DEFAULT_SCHEDULE
        self.pending = ""  # text received but not yet committed to speech
        self.started = False  # a non-space character arrived: leading spaces are not spoken
        self.generations = 0
        self.flushed = False  # a flush came after its last text
        self.segments: asyncio.Queue[str | None] = asyncio.Queue()  # None: close after these
        self.position_ms = 0
        self.busy = False  # speaking a segment
        self.last_input = asyncio.get_running_loop().time()
        self.task = asyncio.create_task(self._run())

    def add(self, text: str, flush: bool) -> None:
        """Take a text message's text and flush flag."""
        self.last_input = asyncio.get_running_loop().time()
        if not self.started:
            text = text.lstrip()
            self.started = bool(text)
        self.pending += text
        if text:
            self.flushed = False
        if flush:
            self.ctx.flushes += 1
            self.flushed = True
            self._commit(len(self.pending))
        elif self.auto_mode or len(self.pending) >= self._threshold():
            self.generations += 1
            self._commit(len(self.pending) - len(_PARTIAL_WORD.search(self.pending).group()))

    def _threshold(self) -> int:
        return self.schedule[min(self.generations, len(self.schedule) - 1)]

    def _commit(self, length: int) -> None:
        """Speak the first `length` characters of the pending text (whole words but on flush)."""
        if length > 0:
            self.segments.put_nowait(self.pending[:length])
            self.pending = self.pending[length:]

    async def close(self) -> None:
        """Close the context: finish its flushed text, or cut its speech short now."""
        self.ctx.closed = True
        self.pending = ""
        if self.flushed:
            self.segments.put_nowait(None)
            return
        self.ctx.cut = self.busy or not self.segments.empty()
        await self.stop()
        await self._final()

    async def stop(self) -> None:
        """Stop the task and wait until it can send nothing more."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    @property
    def done(self) -> bool:
        """Whether isFinal was sent (or can no longer be)."""
        return self.ctx.final or self.task.done()

    async def _run(self) -> None:
        try:
            while (segment := await self.segments.get()) is not None:
                self.busy = True
                if not self.ctx.alignments:
                    await asyncio.sleep(self.server.ttfb)
                await self._speak(segment)
                self.busy = False
            await self._final()
        except ConnectionResetError:
            logger.debug("ElevenLabs stand-in: the client left while audio was streaming")

    async def _speak(self, text: str) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        pcm, chars = await asyncio.to_thread(aligned, text, self.rate)
        self._record_words(chars)
        chunks = chunked(chars, self.server.chunk_ms)
        for i, chunk in enumerate(chunks):
            first, last = chunk[0].start_ms, chunk[-1].start_ms + chunk[-1].duration_ms
            end = self._byte(last) if i < len(chunks) - 1 else len(pcm)
            await self._send_audio(pcm[self._byte(first) : end], chunk)
            pace = self.server.realtime_factor
            due += (last - first) / 1000 / pace if pace else 0.0
            await asyncio.sleep(max(due - loop.time(), 0.0))  # lets a cut in
        self.position_ms += sum(c.duration_ms for c in chars)

    def _byte(self, ms: int) -> int:
        return round(ms * self.rate / 1000) * 2

    def _record_words(self, chars: list[AlignedChar]) -> None:
        text = "".join(c.char for c in chars)
        for match in _WORD.finditer(text):
            start = chars[match.start(1)].start_ms + self.position_ms
            self.ctx.words.append((match.group(1), start / 1000))

    async def _send_audio(self, audio: bytes, chunk: list[AlignedChar]) -> None:
        first = chunk[0].start_ms
        alignment = {
            "chars": [c.char for c in chunk],
            "charStartTimesMs": [c.start_ms - first for c in chunk],
            "charDurationsMs": [c.duration_ms for c in chunk],
        }
        message = {
            "audio": base64.b64encode(audio).decode(),
            "isFinal": None,
            "normalizedAlignment": alignment,  # this voice normalizes nothing
            "alignment": alignment,
            "contextId": self.ctx.context_id,
        }
        self.ctx.first_audio_at = self.ctx.first_audio_at or time.monotonic()
        await self.ws.send_str(json.dumps(message))
        self.ctx.audio_bytes += len(audio)
        self.ctx.alignments.append(alignment)

    async def _final(self) -> None:
        if not self.ctx.final:
            self.ctx.final = True
            await self.ws.send_str(json.dumps({"isFinal": True, "contextId": self.ctx.context_id}))
            self.conn.finals.append(self.ctx.context_id)


class ElevenLabsTTSStandIn(LocalServer):
    """ElevenLabs' multi-context text-to-speech WebSocket, served on 127.0.0.1.

    Knobs: `ttfb` seconds from a context's first text to its first audio; `chunk_ms` of audio
    per message at least (messages end on a character); `realtime_factor` (None: as fast as
    possible; 1.0: real time); `api_key` to accept only that key. Tests read `connections`
    and `refused` (HTTP statuses of refused upgrades).
    """

    def __init__(
        self,
        *,
        ttfb: float = 0.0,
        chunk_ms: int = 120,
        realtime_factor: float | None = None,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.ttfb, self.chunk_ms, self.realtime_factor = ttfb, chunk_ms, realtime_factor
        self.api_key = api_key
        self.connections: list[ElevenLabsConnection] = []
        self.refused: list[int] = []

    def routes(self) -> list[web.RouteDef]:
        """Serve the multi-context stream-input socket."""
        path = "/v1/text-to-speech/{voice_id}/multi-stream-input"
        return [web.get(path, self._websocket)]

    @property
    def contexts(self) -> list[ElevenLabsContext]:
        """Every context of every connection, in order."""
        return [ctx for conn in self.connections for ctx in conn.contexts]

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        refusal = _refusal(request)
        if refusal is not None:
            self.refused.append(refusal.status)
            return refusal
        ws = web.WebSocketResponse(compress=False)  # cancelling a compressed send is not safe
        await ws.prepare(request)
        conn = ElevenLabsConnection(
            voice_id=request.match_info["voice_id"],
            query=dict(request.query),
            api_key=request.headers.get("xi-api-key", ""),
        )
        self.connections.append(conn)
        session = _Session(self, ws, conn)
        try:
            if conn.api_key and not self.accepts(conn.api_key):
                raise _Violation(INVALID_KEY, "invalid_api_key")
            await session.serve()
        except _Violation as e:
            await session.violate(e)
        except ConnectionResetError:
            logger.debug("ElevenLabs stand-in: the client left")
        finally:
            await session.stop()
            conn.closed = True
        return ws

    def accepts(self, key: str) -> bool:
        """Whether `key` is a key this stand-in takes."""
        return bool(key) and (self.api_key is None or key == self.api_key)


class _Session:
    """One open connection: its contexts' speakers and the messages that drive them."""

    def __init__(self, server: ElevenLabsTTSStandIn, ws: web.WebSocketResponse, conn) -> None:
        self.server, self.ws, self.conn = server, ws, conn
        query = conn.query
        self.settings = {
            "rate": OUTPUT_FORMATS.get(query.get("output_format", ""), 0),
            "auto_mode": query.get("auto_mode", "false").lower() == "true",
            "inactivity_timeout": float(query.get("inactivity_timeout", DEFAULT_INACTIVITY_SECS)),
        }
        self.speakers: dict[str, _Speaker] = {}  # open contexts by id
        self.closing: list[_Speaker] = []  # closed contexts still speaking flushed text

    async def serve(self) -> None:
        """Handle messages until the client or a `close_socket` ends the connection."""
        watchdog = asyncio.create_task(self._expire_idle_contexts())
        try:
            async for message in self.ws:
                if message.type == WSMsgType.TEXT and await self._handle(message.data):
                    return
        finally:
            watchdog.cancel()

    async def violate(self, violation: _Violation) -> None:
        """Tell the client what it did wrong, then close with 1008."""
        body = {"message": str(violation), "error": violation.error, "code": POLICY_VIOLATION}
        with contextlib.suppress(ConnectionResetError):
            await self.ws.send_str(json.dumps(body))
        reason = str(violation).encode()[:MAX_REASON_BYTES].decode(errors="ignore")
        self.conn.close_code, self.conn.close_reason = POLICY_VIOLATION, reason
        await self.ws.close(code=POLICY_VIOLATION, message=reason.encode())

    async def stop(self) -> None:
        """Stop every speaker; the connection is over."""
        for speaker in [*self.speakers.values(), *self.closing]:
            await speaker.stop()
        await self.ws.close()

    async def _handle(self, data: str) -> bool:
        """Handle one text message; True when the connection is to close."""
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.conn.messages.append({"invalid": data})
            raise _Violation("Invalid message received", "invalid_message")
        self.conn.messages.append(message)
        self._authenticate(message)
        if message.get("close_socket"):
            await self._close_socket()
            return True
        context_id = str(message.get("context_id") or message.get("contextId") or "")
        if message.get("close_context"):
            if context_id in self.speakers:
                await self._close(self.speakers.pop(context_id))
            return False
        text = message.get("text") or ""
        if not context_id and not text and not message.get("flush"):
            self.conn.keepalives += 1
            return False
        speaker = self.speakers.get(context_id) or self._open(context_id, message)
        if "voice_settings" in message and message["voice_settings"] != speaker.ctx.voice_settings:
            raise _Violation(VOICE_SETTINGS_CHANGED, "invalid_voice_settings")
        if text or message.get("flush"):
            speaker.ctx.inputs.append(text)
            speaker.add(text, bool(message.get("flush")))
        else:
            self.conn.keepalives += 1
            speaker.last_input = asyncio.get_running_loop().time()
        return False

    def _authenticate(self, message: dict) -> None:
        """A connection without an `xi-api-key` header takes the key from its first message."""
        if self.conn.api_key:
            return
        self.conn.api_key = str(message.get("xi_api_key") or message.get("xi-api-key") or "")
        if not self.server.accepts(self.conn.api_key):
            raise _Violation(INVALID_KEY, "invalid_api_key")

    def _open(self, context_id: str, message: dict) -> _Speaker:
        self.closing = [s for s in self.closing if not s.done]
        if len(self.speakers) + len(self.closing) >= MAX_CONTEXTS:
            raise _Violation(TOO_MANY_CONTEXTS, "max_active_conversations")
        ctx = ElevenLabsContext(context_id, message.get("voice_settings"))
        self.conn.contexts.append(ctx)
        speaker = _Speaker(self.server, self.ws, self.conn, ctx, self.settings)
        schedule = (message.get("generation_config") or {}).get("chunk_length_schedule")
        speaker.schedule = tuple(schedule or DEFAULT_SCHEDULE)
        self.speakers[context_id] = speaker
        return speaker

    async def _close(self, speaker: _Speaker) -> None:
        await speaker.close()
        if not speaker.done:
            self.closing.append(speaker)

    async def _close_socket(self) -> None:
        """Close every context (flushed text is spoken first), then the socket."""
        while self.speakers:
            await self._close(self.speakers.popitem()[1])
        for speaker in self.closing:
            with contextlib.suppress(asyncio.CancelledError):
                await speaker.task
        await self.ws.close()

    async def _expire_idle_contexts(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.settings["inactivity_timeout"]
        with contextlib.suppress(ConnectionResetError):  # the client left: nothing to close
            while True:
                await asyncio.sleep(min(timeout / 4, 1.0))
                for context_id, speaker in list(self.speakers.items()):
                    if loop.time() - speaker.last_input > timeout:
                        logger.debug(f"ElevenLabs stand-in: context {context_id} timed out")
                        await self._close(self.speakers.pop(context_id))


def _refusal(request: web.Request) -> web.Response | None:
    """The HTTP answer refusing the upgrade, if it is refused."""
    if request.query.get("model_id") == "eleven_v3":
        message = "Multi-context WebSockets are not available for the eleven_v3 model."
        return _detail(403, "model_not_supported", message)
    output_format = request.query.get("output_format", "mp3_44100")
    if output_format not in OUTPUT_FORMATS:
        message = f"This stand-in speaks raw PCM only ({', '.join(OUTPUT_FORMATS)})."
        return _detail(400, "invalid_output_format", message)
    return None


def _detail(status: int, code: str, message: str) -> web.Response:
    """An ElevenLabs HTTP error body: `{"detail": {"status", "message"}}`."""
    return web.json_response({"detail": {"status": code, "message": message}}, status=status)
