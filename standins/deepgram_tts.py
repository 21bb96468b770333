"""Deepgram streaming TTS stand-in: WebSocket `/v1/speak`, speaking with `speech.synthesize`.

`Speak` queues text; as soon as the queued text ends a sentence it is synthesized and streamed
as binary frames of raw linear16 PCM (as Deepgram does: pipecat sends one `Speak` per sentence
and `Flush` only at the end of a reply); `Flush` synthesizes whatever is left, then answers
`Flushed`. Control messages are read while audio streams: `Clear`
stops the audio at once, drops queued text and answers `Cleared`; `Close` closes.

A network failure mid-synthesis: after `drop_after_bytes` of the audio of the `drop_on_speak`th
`Speak` (counted over all connections), or of the next `Speak` of `drop_on_text`, the
connection is cut and its queued text is lost.
"""

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import WSMsgType, web
from loguru import logger

from standins.deepgram_stt import refusal, refuse
from standins.http_server import LocalServer
from standins.speech import synthesize

DEFAULT_SAMPLE_RATE = 24000


@dataclass
class TTSConnection:
    """What one `/v1/speak` connection carried, for tests to assert on."""

    query: dict[str, str]
    authorization: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    speaks: list[str] = field(default_factory=list)  # the text of each Speak, in order
    speaks_at: list[float] = field(default_factory=list)  # time.monotonic() of each
    audio_at: list[float] = field(default_factory=list)  # of each synthesis' first audio
    flushes: int = 0
    clears: int = 0
    audio_bytes: int = 0  # of audio sent
    sent: list[dict] = field(default_factory=list)  # every text message sent, in order
    closed: bool = False
    dropped_at: float | None = None  # time.monotonic() when the stand-in cut it (`drop_*`)
    last_audio_at: float = 0.0  # time.monotonic() of the last audio sent


class _Speaker:
    """Streams each flush's audio in turn, as one task that `clear()` can cut short."""

    def __init__(
        self, ws: web.WebSocketResponse, conn: TTSConnection, server: "DeepgramTTSStandIn"
    ):
        self.ws, self.conn, self.server = ws, conn, server
        self.rate = int(conn.query.get("sample_rate", DEFAULT_SAMPLE_RATE))
        self.text: list[str] = []  # spoken since the last flush
        # Text to synthesize, the number of its last Speak (over all connections), and the
        # sequence id to answer `Flushed` with after it, if any.
        self.flushed: asyncio.Queue[tuple[str, int, int | None]] = asyncio.Queue()
        self.due = 0.0  # when the audio sent so far is due, at realtime_factor
        self.first_chunk = True  # the next chunk is the first of its synthesis
        self.speak_number = 0  # of the synthesis streaming now
        self.speak_bytes = 0  # of its audio sent so far
        self.dropping: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._run())

    def speak(self, text: str) -> None:
        """Queue text; a finished sentence goes to synthesis at once."""
        self.conn.speaks.append(text)
        self.conn.speaks_at.append(time.monotonic())
        self.server.speaks += 1
        self.server.arm_on(text)
        self.text.append(text)
        if text.rstrip().endswith((".", "!", "?")):
            self.flushed.put_nowait(("".join(self.text), self.server.speaks, None))
            self.text.clear()

    def flush(self) -> None:
        """Synthesize what is queued, after whatever is streaming now."""
        self.flushed.put_nowait(("".join(self.text), self.server.speaks, self.conn.flushes))
        self.conn.flushes += 1
        self.text.clear()

    async def clear(self) -> None:
        """Stop streaming at once, drop all queued text, then answer Cleared."""
        await self.stop()
        self.text.clear()
        self.flushed = asyncio.Queue()
        await self.send_json({"type": "Cleared", "sequence_id": self.conn.clears})
        self.conn.clears += 1
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Cancel the streaming task and wait until it can send nothing more."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def send_json(self, message: dict) -> None:
        """Send one text message and record it."""
        await self.ws.send_str(json.dumps(message))
        self.conn.sent.append(message)

    async def _run(self) -> None:
        try:
            while True:
                text, self.speak_number, sequence_id = await self.flushed.get()
                self.speak_bytes = 0
                if text.strip():
                    await self._stream(text)
                if sequence_id is not None:
                    await self.send_json({"type": "Flushed", "sequence_id": sequence_id})
        except ConnectionResetError:
            logger.debug("Deepgram TTS stand-in: the client left while audio was streaming")
        except _Dropped:
            self.dropping.set_result(None)  # the connection's handler cuts it

    async def _stream(self, text: str) -> None:
        """Send the audio of text in chunk_ms frames, paced at realtime_factor if one is set."""
        await asyncio.sleep(self.server.ttfb)
        size = self.rate * self.server.chunk_ms // 1000 * 2
        self.due = asyncio.get_running_loop().time()
        self.first_chunk = True
        pending = b""
        # Words are synthesized independently, so word by word adds up to synthesize(text),
        # and the first audio leaves without waiting for the whole reply to be synthesized.
        for word in text.split():
            pending += (await asyncio.to_thread(synthesize, word, self.rate)).pcm
            whole = len(pending) - len(pending) % size
            await self._send(pending[:whole], size)
            pending = pending[whole:]
        await self._send(pending, size)

    async def _send(self, audio: bytes, size: int) -> None:
        for i in range(0, len(audio), size):
            chunk = audio[i : i + size]
            if self.first_chunk:
                self.conn.audio_at.append(time.monotonic())
                self.first_chunk = False
            await self.ws.send_bytes(chunk)
            self.conn.audio_bytes += len(chunk)
            self.conn.last_audio_at = time.monotonic()
            self.speak_bytes += len(chunk)
            if self.server.due_to_drop(self.speak_number, self.speak_bytes):
                raise _Dropped
            pace = self.server.realtime_factor
            self.due += len(chunk) / 2 / self.rate / pace if pace else 0.0
            # Sleeping (or at least yielding) between chunks lets a Clear be read mid-stream.
            await asyncio.sleep(max(self.due - asyncio.get_running_loop().time(), 0.0))


class _Dropped(Exception):
    """The stand-in's `drop_*` knobs say to cut the connection now."""


class DeepgramTTSStandIn(LocalServer):
    """Deepgram's streaming text-to-speech WebSocket, served on 127.0.0.1.

    Knobs: `ttfb` seconds from a flush to its first audio; `connect_delay` seconds before the
    handshake completes; `chunk_ms` of audio per binary frame;
    `realtime_factor` (None: as fast as possible; 1.0: real time; 2.0: twice as fast);
    `api_key` to accept only that key.

    A network failure mid-reply: once `drop_after_bytes` of the audio of Speak number
    `drop_on_speak` (1-based, over all connections) have been sent, the connection is cut
    as `drop_with` says: "abort" closes the TCP connection with no close frame (the client
    sees 1006, as when a network path dies), 1011 sends Deepgram's internal-error close. The
    rest of that audio and all queued text are lost, as they are at Deepgram; the next
    `refuse_after_drop` upgrades are refused with 503 (Deepgram briefly unavailable). A bot
    server synthesizes its greetings at start-up, so set the knob on the running stand-in to
    count from then: `tts.drop_on_speak = tts.speaks + 2`. Where other replies may come first
    (speculative ones a bot withdraws), name the Speak by its text: `drop_on_text`.
    Tests read `connections` (one `TTSConnection` each; `dropped_at` on the cut one) and
    `refused` (HTTP statuses of refused upgrades).
    """

    def __init__(
        self,
        *,
        ttfb: float = 0.0,
        connect_delay: float = 0.0,
        chunk_ms: int = 50,
        realtime_factor: float | None = None,
        api_key: str | None = None,
        drop_on_speak: int | None = None,
        drop_on_text: str | None = None,
        drop_after_bytes: int = 0,
        drop_with: Literal["abort", 1011] = "abort",
        refuse_after_drop: int = 0,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.ttfb, self.chunk_ms, self.realtime_factor = ttfb, chunk_ms, realtime_factor
        self.connect_delay = connect_delay
        self.api_key = api_key
        self.drop_on_speak, self.drop_after_bytes = drop_on_speak, drop_after_bytes
        self.drop_on_text = drop_on_text
        self.drop_with, self.refuse_after_drop = drop_with, refuse_after_drop
        self.speaks = 0  # Speak messages received, over all connections
        self.refusals_due = 0  # upgrades still to refuse with 503 after a drop
        self.connections: list[TTSConnection] = []
        self.refused: list[int] = []

    def arm_on(self, text: str) -> None:
        """Make the Speak just counted the one to cut, if it is the text to drop on."""
        if self.drop_on_text is not None and text.strip() == self.drop_on_text.strip():
            self.drop_on_speak, self.drop_on_text = self.speaks, None

    def due_to_drop(self, speak_number: int, audio_bytes: int) -> bool:
        """Whether the audio sent of Speak `speak_number` reaches the drop knobs (once)."""
        return speak_number == self.drop_on_speak and audio_bytes >= self.drop_after_bytes

    def routes(self) -> list[web.RouteDef]:
        """Serve `/v1/speak`."""
        return [web.get("/v1/speak", self._speak)]

    async def _speak(self, request: web.Request) -> web.StreamResponse:
        answer = refusal(request, api_key=self.api_key, needs_sample_rate=False)
        if answer is None and not request.query.get("sample_rate", "24000").isdigit():
            answer = refuse(400, "Bad Request", "sample_rate must be a whole number of Hz.")
        if answer is None and self.refusals_due > 0:
            self.refusals_due -= 1
            answer = refuse(503, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable.")
        if answer is not None:
            self.refused.append(answer.status)
            return answer
        await asyncio.sleep(self.connect_delay)
        conn = TTSConnection(dict(request.query), request.headers["Authorization"])
        ws = web.WebSocketResponse(compress=False)  # cancelling a compressed send is not safe
        ws.headers["dg-request-id"] = conn.request_id
        await ws.prepare(request)
        self.connections.append(conn)
        speaker = _Speaker(ws, conn, self)
        model = conn.query.get("model", "aura-2-helena-en")
        await speaker.send_json(
            {
                "type": "Metadata",
                "request_id": conn.request_id,
                "model_name": model,
                "model_version": "2025-01-01.0",
                "model_uuid": "00000000-0000-4000-8000-000000000002",
            }
        )
        receiving = asyncio.create_task(self._receive(ws, speaker))
        try:
            await asyncio.wait({receiving, speaker.dropping}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():  # the speaker reached the drop knobs
                receiving.cancel()
                await asyncio.wait({receiving})
                await self._drop(request, ws, conn)
            elif not receiving.cancelled():
                receiving.result()  # raise what it raised
        except ConnectionResetError:
            logger.debug("Deepgram TTS stand-in: the client left")
        finally:
            receiving.cancel()
            await speaker.stop()
            await ws.close()
            conn.closed = True
        return ws

    async def _drop(self, request: web.Request, ws: web.WebSocketResponse, conn: TTSConnection):
        """Cut the connection like a failing network (or Deepgram) would."""
        self.drop_on_speak = None  # once
        self.refusals_due += self.refuse_after_drop
        conn.dropped_at = time.monotonic()
        logger.debug(f"Deepgram TTS stand-in: dropping {conn.request_id} ({self.drop_with})")
        if self.drop_with == 1011:
            await ws.close(code=1011, message=b"Deepgram encountered an internal error.")
        elif request.transport is not None:
            request.transport.abort()  # no close frame, queued data discarded

    async def _receive(self, ws: web.WebSocketResponse, speaker: _Speaker) -> None:
        """Handle control messages until the client closes or sends Close."""
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            command = _command(message.data)
            kind = command.get("type")
            if kind == "Speak":
                speaker.speak(str(command.get("text", "")))
            elif kind == "Flush":
                speaker.flush()
            elif kind == "Clear":
                await speaker.clear()
            elif kind == "Close":
                return
            else:
                description = f"Unknown message type: {kind!r}"
                await speaker.send_json({"type": "Warning", "description": description})


def _command(text: str) -> dict:
    try:
        command = json.loads(text)
    except ValueError:
        command = None
    if not isinstance(command, dict):
        logger.warning("Deepgram TTS stand-in: a text message that is not a JSON object")
        return {}
    return command
