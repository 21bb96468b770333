"""Deepgram live STT stand-in: WebSocket `/v1/listen`, answering in Deepgram's own messages.

Audio is cut into segments by loudness (`speech.is_speech` per 20 ms frame) and each segment is
transcribed by a `speech.Recognizer`, so known recordings come back with their real words. All
times are stream time (seconds of audio received), so results do not depend on sending speed.
"""

import asyncio
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from aiohttp import WSMsgType, web
from loguru import logger

from standins.http_server import LocalServer
from standins.speech import DATA, Recognizer, WordTiming, is_speech, recognizer_for

DEFAULT_TRANSCRIPTS = DATA / "transcripts.txt"  # the English recordings

DEFAULT_ENDPOINT_MS = 300  # the stand-in's endpoint when the client sends no `endpointing`
INTERIM_EVERY_S = 0.3
# A pause shorter than this continues the caller's utterance (unless it was complete): its next
# words are recognized in the context of the words before, as after a mid-sentence Finalize.
UTTERANCE_GAP_S = 1.0
_MODEL = {
    "model_info": {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"},
    "model_uuid": "00000000-0000-4000-8000-000000000003",
}
_IDLE_REASON = b"Deepgram did not receive audio data or a text message within the timeout window."
_REFUSALS = {  # refused upgrades as Deepgram words them: (err_code, err_msg)
    400: ("Bad Request", "Bad Request."),
    401: ("INVALID_AUTH", "Invalid credentials."),
    402: ("ASR_PAYMENT_REQUIRED", "Project does not have enough credits."),
    403: ("INSUFFICIENT_PERMISSIONS", "Project does not have access to the requested model."),
    429: ("TOO_MANY_REQUESTS", "Too many requests."),
}


def refusal(
    request: web.Request, *, api_key: str | None, needs_sample_rate: bool = True
) -> web.Response | None:
    """Deepgram's answer to an upgrade it refuses, or None.

    A bad token: 401; not linear16, or raw audio to listen to without a sample rate: 400.
    """
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Token" or not key or (api_key is not None and key != api_key):
        return refuse(401, "INVALID_AUTH", "Invalid credentials.")
    if request.query.get("encoding") != "linear16":
        return refuse(400, "Bad Request", "This stand-in serves encoding=linear16 only.")
    if needs_sample_rate and not request.query.get("sample_rate", "").isdigit():
        return refuse(400, "Bad Request", "sample_rate is required for raw audio.")
    return None


def refuse(status: int, code: str, message: str) -> web.Response:
    """A refused upgrade as Deepgram sends it: JSON body, reason in the `dg-error` header."""
    body = json.dumps({"err_code": code, "err_msg": message, "request_id": str(uuid.uuid4())})
    headers = {"dg-error": message}
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


@dataclass
class STTConnection:
    """What one `/v1/listen` connection carried, for tests to assert on."""

    query: dict[str, str]
    authorization: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    audio_bytes: int = 0
    audio_messages: int = 0
    controls: list[str] = field(default_factory=list)  # "KeepAlive", "Finalize", "CloseStream"
    finalized_at: list[float] = field(default_factory=list)  # time.monotonic() of each Finalize
    sent: list[dict] = field(default_factory=list)  # every message sent, in order
    sent_at: list[float] = field(default_factory=list)  # time.monotonic() of each
    closed: bool = False
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None  # time.monotonic() when it closed
    speech_secs: float = 0.0  # of the audio received, how much was speech
    dropped: bool = False  # the stand-in cut this connection (see `drop_after_speech_secs`)
    audio: bytearray = field(default_factory=bytearray, repr=False)  # every byte received
    max_lag: float = 0.0  # how far behind real time the audio arrived, at worst (s)
    _schedule: float = field(default=float("inf"), repr=False)

    def received(self, audio: bytes, sample_rate: int) -> None:
        """Count audio in, and how much later than real time it arrives.

        Live audio cannot arrive before its last sample was spoken, so each message implies
        when the stream started at the latest (arrival minus the audio up to its end). The
        earliest such start is the real-time schedule; a message later than it lags. The
        first second is left out: audio kept while the socket opened arrives in a burst.
        """
        self.audio_bytes += len(audio)
        self.audio += audio
        spoken = self.audio_bytes / 2 / sample_rate
        start = time.monotonic() - spoken
        self._schedule = min(self._schedule, start)
        if spoken > 1.0:
            self.max_lag = max(self.max_lag, start - self._schedule)
        self.audio_messages += 1

    def sent_of(self, kind: str) -> list[dict]:
        """The messages of one type that were sent, e.g. "Results" or "Metadata"."""
        return [m for m in self.sent if m["type"] == kind]

    @property
    def final_transcripts(self) -> list[str]:
        """The non-empty transcripts of the final results sent."""
        finals = [r for r in self.sent_of("Results") if r["is_final"]]
        return [t for r in finals if (t := r["channel"]["alternatives"][0]["transcript"])]


def _number(value: str, default: int) -> int:
    """A whole-number query parameter, or default when absent or not a number."""
    return int(value) if value.isdigit() else default


def _word(w: WordTiming, offset: float) -> dict:
    """A Deepgram word: lower case without punctuation, timed in stream seconds."""
    plain = re.sub(r"[^\w']", "", w.word).lower() or w.word
    start, end = round(offset + w.start_s, 3), round(offset + w.end_s, 3)
    return {
        "word": plain,
        "start": start,
        "end": end,
        "confidence": 0.99,
        "punctuated_word": w.word,
    }


class _Stream:
    """One stream: 20 ms frames in, Deepgram messages queued out with a not-before time."""

    def __init__(self, conn: STTConnection, recognizer: Recognizer, final_delay: float) -> None:
        q = conn.query
        self.conn, self.recognizer, self.final_delay = conn, recognizer, final_delay
        self.rate = int(q["sample_rate"])
        endpoint = q.get("endpointing", "")
        frames = max(1, _number(endpoint, DEFAULT_ENDPOINT_MS) // 20)
        self.endpoint_frames = None if endpoint == "false" else frames
        self.utterance_end_s = _number(q.get("utterance_end_ms", ""), 0) / 1000 or None
        self.outbox: asyncio.Queue[tuple[float, dict | None]] = asyncio.Queue()
        self.pending, self.sha = bytearray(), hashlib.sha256()
        self.position = 0  # samples of whole frames processed
        self.segment: bytearray | None = None
        self.utterance: bytearray | None = None  # all audio since the utterance began
        self.utterance_start = self.words_final = self.quiet_since = 0
        self.segment_start = self.silent_frames = self.last_interim = 0
        self.last_word_end: float | None = None  # of words not yet followed by an UtteranceEnd

    def audio(self, data: bytes) -> None:
        """Take binary audio and process it 20 ms at a time."""
        self.conn.received(data, self.rate)
        self.sha.update(data)
        self.pending += data
        size = self.rate // 50 * 2
        while len(self.pending) >= size:
            self._frame(bytes(self.pending[:size]))
            del self.pending[:size]

    def _frame(self, frame: bytes) -> None:
        start, speech = self.position, is_speech(frame)
        self.position += len(frame) // 2
        self.conn.speech_secs += speech * len(frame) / 2 / self.rate
        if self.segment is None and speech:
            self._open_segment(start)
        if self.utterance is not None:
            self.utterance += frame
        if self.segment is None:
            if self.position - self.quiet_since >= UTTERANCE_GAP_S * self.rate:
                self.utterance = None
            self._utterance_end_if_due()
            return
        self.segment += frame
        self.silent_frames = 0 if speech else self.silent_frames + 1
        if speech:
            self._interim_if_due()
        elif self.endpoint_frames and self.silent_frames >= self.endpoint_frames:
            self.flush(from_finalize=False)
        else:
            self._utterance_end_if_due()

    def _open_segment(self, start: int) -> None:
        self.segment, self.segment_start, self.last_interim = bytearray(), start, start
        if self.utterance is None:
            self.utterance, self.utterance_start, self.words_final = bytearray(), start, 0
        self.silent_frames = 0
        if self.conn.query.get("vad_events") == "true":
            self._queue({"type": "SpeechStarted", "channel": [0], "timestamp": self._s(start)})

    def _interim_if_due(self) -> None:
        due = self.position - self.last_interim >= INTERIM_EVERY_S * self.rate
        if due and self.conn.query.get("interim_results") == "true":
            self.last_interim = self.position
            self._queue(self._results(is_final=False, from_finalize=False))

    def _utterance_end_if_due(self) -> None:
        if self.utterance_end_s is None or self.last_word_end is None:
            return
        if self._s(self.position) - self.last_word_end >= self.utterance_end_s:
            self._queue(
                {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": self.last_word_end}
            )
            self.last_word_end = None

    def flush(self, *, from_finalize: bool) -> None:
        """End the open segment with a final result (for Finalize: one even if none is open)."""
        if self.segment is None and not from_finalize:
            return
        if self.segment is None:
            self.segment_start, self.segment = self.position, bytearray()
        self._queue(self._results(is_final=True, from_finalize=from_finalize), self.final_delay)
        self.segment, self.quiet_since = None, self.position

    def close(self) -> None:
        """Queue the closing Metadata, then the end of the queue."""
        channels = _number(self.conn.query.get("channels", ""), 1)
        summary = {"sha256": self.sha.hexdigest(), "created": datetime.now(UTC).isoformat()}
        summary |= {"duration": self._s(self.conn.audio_bytes // 2), "channels": channels}
        ids = {"transaction_key": "deprecated", "request_id": self.conn.request_id}
        self._queue({"type": "Metadata", **ids, **summary})
        self.outbox.put_nowait((0.0, None))

    def _results(self, *, is_final: bool, from_finalize: bool) -> dict:
        segment, utterance = bytes(self.segment or b""), bytes(self.utterance or b"")
        heard = self.recognizer.recognize(utterance, self.rate) if segment else None
        offset, start = self._s(self.utterance_start), self._s(self.segment_start)
        recognized = heard.words if heard else []
        words = [_word(w, offset) for w in recognized[self.words_final :]]  # only new words
        if is_final and heard:  # (an empty final, e.g. a Finalize in silence, changes nothing)
            self.words_final = len(recognized)
            if heard.transcript in self.recognizer.transcripts:
                self.utterance = None  # a whole known utterance: the next words start afresh
        self.last_word_end = words[-1]["end"] if words else self.last_word_end
        key = "punctuated_word" if self.conn.query.get("punctuate") == "true" else "word"
        transcript = " ".join(w[key] for w in words)
        confidence = round(max(heard.score, 0.0), 3) if heard else 0.0
        alternative = {"transcript": transcript, "confidence": confidence, "words": words}
        timing = {"duration": self._s(len(segment) // 2), "start": start}
        finality = {"is_final": is_final, "speech_final": is_final, "from_finalize": from_finalize}
        metadata = {"request_id": self.conn.request_id, **_MODEL}
        message = {"type": "Results", "channel_index": [0, 1], **timing, **finality}
        return message | {"channel": {"alternatives": [alternative]}, "metadata": metadata}

    def _s(self, samples: int) -> float:
        return round(samples / self.rate, 3)

    def _queue(self, message: dict, delay: float = 0.0) -> None:
        self.outbox.put_nowait((asyncio.get_running_loop().time() + delay, message))

    async def send_all(self, ws: web.WebSocketResponse) -> None:
        """Send queued messages in order, each no sooner than its time, until the end mark."""
        while (item := await self.outbox.get())[1] is not None:
            not_before, message = item
            await asyncio.sleep(max(0.0, not_before - asyncio.get_running_loop().time()))
            try:
                await ws.send_str(json.dumps(message))
            except ConnectionResetError:
                return  # the client left; nothing more can reach it
            self.conn.sent.append(message)
            self.conn.sent_at.append(time.monotonic())


class DeepgramSTTStandIn(LocalServer):
    """Deepgram's live transcription WebSocket, served on 127.0.0.1.

    Knobs: `final_delay` seconds before each final result; `connect_delay` seconds before the
    handshake completes; `reject_connections` upgrades refused with 503 before serving again;
    `reject_with_status` every upgrade refused with that status (401: Deepgram's answer to a
    bad key); `idle_timeout` seconds with neither audio nor a text message before closing
    (1011); `api_key` to accept only that key; `recognizer` (default: the recordings in the
    language the client asks for, `recognizer_for(language)`).

    A network failure: after `drop_after_speech_secs` of speech received on a connection (so
    mid-utterance, however long the greeting took), the stand-in cuts
    it (the first `drops` connections) as `drop_with` says: "abort" closes the TCP connection
    with no close frame and no further results (the client sees 1006, as when a network path
    dies), 1011 sends Deepgram's internal-error close. Results not yet sent are lost; the
    next `refuse_after_drop` upgrades are refused with 503 (Deepgram briefly unavailable).
    Tests read `connections` (one `STTConnection` each) and `refused` (HTTP statuses).
    """

    def __init__(
        self,
        *,
        recognizer: Recognizer | None = None,
        api_key: str | None = None,
        final_delay: float = 0.0,
        connect_delay: float = 0.0,
        reject_connections: int = 0,
        reject_with_status: int | None = None,
        idle_timeout: float = 10.0,
        drop_after_speech_secs: float | None = None,
        drop_with: Literal["abort", 1011] = "abort",
        drops: int = 1,
        refuse_after_drop: int = 0,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.recognizer = recognizer
        self.api_key, self.final_delay, self.connect_delay = api_key, final_delay, connect_delay
        self.reject_connections, self.idle_timeout = reject_connections, idle_timeout
        self.reject_with_status = reject_with_status
        self.drop_after_speech_secs, self.drop_with = drop_after_speech_secs, drop_with
        self.drops = drops
        self.refuse_after_drop = refuse_after_drop
        self.connections: list[STTConnection] = []
        self.refused: list[int] = []

    def routes(self) -> list[web.RouteDef]:
        """Serve `/v1/listen`."""
        return [web.get("/v1/listen", self._listen)]

    def _refusal(self, request: web.Request) -> web.Response | None:
        if self.reject_with_status is not None:
            code, message = _REFUSALS.get(self.reject_with_status, ("Refused", "Refused."))
            return refuse(self.reject_with_status, code, message)
        if self.reject_connections > 0:
            self.reject_connections -= 1
            return refuse(503, "SERVICE_UNAVAILABLE", "The stand-in was told to refuse.")
        return refusal(request, api_key=self.api_key)

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        answer = self._refusal(request)
        if answer is not None:
            self.refused.append(answer.status)
            return answer
        await asyncio.sleep(self.connect_delay)
        conn = STTConnection(dict(request.query), request.headers["Authorization"])
        ws = web.WebSocketResponse()
        ws.headers["dg-request-id"] = conn.request_id
        await ws.prepare(request)
        self.connections.append(conn)
        recognizer = self.recognizer or recognizer_for(request.query.get("language", "en"))
        stream = _Stream(conn, recognizer, self.final_delay)
        sender = asyncio.create_task(stream.send_all(ws))
        logger.debug(f"Deepgram STT stand-in: connection {conn.request_id} opened")
        try:
            ending = await self._receive(ws, stream)
            if ending == "CloseStream":
                await sender  # everything queued is sent, Metadata last
                await ws.close()
            elif ending == "idle":
                await ws.close(code=1011, message=_IDLE_REASON)
            elif ending == "drop":
                sender.cancel()  # results not yet sent are lost with the connection
                await self._drop(request, ws, conn)
        finally:
            sender.cancel()
            conn.closed, conn.closed_at = True, time.monotonic()
            logger.debug(f"Deepgram STT stand-in: connection {conn.request_id} closed")
        return ws

    async def _drop(self, request: web.Request, ws: web.WebSocketResponse, conn: STTConnection):
        """Cut the connection like a failing network (or server) would."""
        conn.dropped, self.drops = True, self.drops - 1
        self.reject_connections += self.refuse_after_drop
        speech = f"{conn.speech_secs:.2f} s of speech in"
        logger.debug(f"Deepgram STT stand-in: dropping {conn.request_id}, {speech}")
        if self.drop_with == 1011:
            await ws.close(code=1011, message=b"Deepgram encountered an internal error.")
        elif request.transport is not None:
            request.transport.abort()  # no close frame, queued data discarded

    def _due_to_drop(self, conn: STTConnection) -> bool:
        if self.drop_after_speech_secs is None or self.drops <= 0:
            return False
        return conn.speech_secs >= self.drop_after_speech_secs

    async def _receive(self, ws: web.WebSocketResponse, stream: _Stream) -> str:
        """Read until the stream ends; returns why: "CloseStream", "idle", "drop" or "client"."""
        while True:
            try:
                message = await ws.receive(timeout=self.idle_timeout)
            except TimeoutError:
                return "idle"
            if message.type == WSMsgType.BINARY:
                stream.audio(message.data)
                if self._due_to_drop(stream.conn):
                    return "drop"
            elif message.type != WSMsgType.TEXT:
                return "client"
            elif (kind := _control(message.data)) is not None:
                stream.conn.controls.append(kind)
                if kind == "Finalize":
                    stream.conn.finalized_at.append(time.monotonic())
                if kind in ("Finalize", "CloseStream"):
                    stream.flush(from_finalize=kind == "Finalize")
                if kind == "CloseStream":
                    stream.close()
                    return kind


def _control(text: str) -> str | None:
    try:
        return str(json.loads(text).get("type"))
    except (ValueError, AttributeError):
        logger.warning("Deepgram STT stand-in: ignoring a text message that is not a JSON object")
        return None
