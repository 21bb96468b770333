"""Deepgram streaming TTS stand-in: WebSocket `/v1/speak`, speaking with `speech.synthesize`.

`Speak` queues text; as soon as the queued text ends a sentence it is synthesized and streamed
as binary frames of raw linear16 PCM (as Deepgram does: pipecat sends one `Speak` per sentence
and `Flush` only at the end of a reply); `Flush` synthesizes whatever is left, then answers
`Flushed`. Control messages are read while audio streams: `Clear`
stops the audio at once, drops queued text and answers `Cleared`; `Close` closes.
"""

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field

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


class _Speaker:
    """Streams each flush's audio in turn, as one task that `clear()` can cut short."""

    def __init__(
        self, ws: web.WebSocketResponse, conn: TTSConnection, server: "DeepgramTTSStandIn"
    ):
        self.ws, self.conn, self.server = ws, conn, server
        self.rate = int(conn.query.get("sample_rate", DEFAULT_SAMPLE_RATE))
        self.text: list[str] = []  # spoken since the last flush
        # Text to synthesize, with the sequence id to answer `Flushed` with after it, if any.
        self.flushed: asyncio.Queue[tuple[str, int | None]] = asyncio.Queue()
        self.due = 0.0  # when the audio sent so far is due, at realtime_factor
        self.first_chunk = True  # the next chunk is the first of its synthesis
        self.task = asyncio.create_task(self._run())

    def speak(self, text: str) -> None:
        """Queue text; a finished sentence goes to synthesis at once."""
        self.conn.speaks.append(text)
        self.conn.speaks_at.append(time.monotonic())
        self.text.append(text)
        if text.rstrip().endswith((".", "!", "?")):
            self.flushed.put_nowait(("".join(self.text), None))
            self.text.clear()

    def flush(self) -> None:
        """Synthesize what is queued, after whatever is streaming now."""
        self.flushed.put_nowait(("".join(self.text), self.conn.flushes))
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
                text, sequence_id = await self.flushed.get()
                if text.strip():
                    await self._stream(text)
                if sequence_id is not None:
                    await self.send_json({"type": "Flushed", "sequence_id": sequence_id})
        except ConnectionResetError:
            logger.debug("Deepgram TTS stand-in: the client left while audio was streaming")

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
            pace = self.server.realtime_factor
            self.due += len(chunk) / 2 / self.rate / pace if pace else 0.0
            # Sleeping (or at least yielding) between chunks lets a Clear be read mid-stream.
            await asyncio.sleep(max(self.due - asyncio.get_running_loop().time(), 0.0))


class DeepgramTTSStandIn(LocalServer):
    """Deepgram's streaming text-to-speech WebSocket, served on 127.0.0.1.

    Knobs: `ttfb` seconds from a flush to its first audio; `connect_delay` seconds before the
    handshake completes; `chunk_ms` of audio per binary frame;
    `realtime_factor` (None: as fast as possible; 1.0: real time; 2.0: twice as fast);
    `api_key` to accept only that key. Tests read `connections` (one `TTSConnection` each) and
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
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.ttfb, self.chunk_ms, self.realtime_factor = ttfb, chunk_ms, realtime_factor
        self.connect_delay = connect_delay
        self.api_key = api_key
        self.connections: list[TTSConnection] = []
        self.refused: list[int] = []

    def routes(self) -> list[web.RouteDef]:
        """Serve `/v1/speak`."""
        return [web.get("/v1/speak", self._speak)]

    async def _speak(self, request: web.Request) -> web.StreamResponse:
        answer = refusal(request, api_key=self.api_key, needs_sample_rate=False)
        if answer is None and not request.query.get("sample_rate", "24000").isdigit():
            answer = refuse(400, "Bad Request", "sample_rate must be a whole number of Hz.")
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
        try:
            await self._receive(ws, speaker)
        except ConnectionResetError:
            logger.debug("Deepgram TTS stand-in: the client left")
        finally:
            await speaker.stop()
            await ws.close()
            conn.closed = True
        return ws

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
