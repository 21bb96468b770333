"""Deepgram Flux stand-in: WebSocket `/v2/listen`, transcripts by turn, turn ends decided here.

Flux, unlike nova on `/v1/listen`, tells the client where the caller's turns start and end, in
`TurnInfo` events: `StartOfTurn`, an `Update` per ~0.25 s of audio, `EagerEndOfTurn` and
`TurnResumed` (only with `eager_eot_threshold`), `EndOfTurn` (the turn's transcript), and
`turn_index` counts turns. Here a turn starts with its first recognized word (loudness per 20 ms
frame, `speech.is_speech`, then a `speech.Recognizer`). Its end comes from the silence after the
speech: the end-of-turn confidence grows with that silence, reaching 1 after `eot_silence_secs`
when the words make a finished sentence and staying at 0.25 at most when they do not; the turn
ends once it reaches `eot_threshold` (1.0 switches that off), or after `eot_timeout_ms` of
silence whatever it is. All times are stream time (seconds of audio received), so results do
not depend on sending speed.
"""

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from loguru import logger

from standins.deepgram_stt import refusal, refuse
from standins.http_server import LocalServer
from standins.speech import Recognition, Recognizer, is_speech, recognizer_for

MODELS = ("flux-general-en", "flux-general-multi")
CONTROLS = ("CloseStream", "Configure", "ForceEndTurn")  # the text messages Flux accepts
UPDATE_EVERY_S = 0.24  # Flux's Update cadence ("approximately every 0.25 seconds of audio")
CHUNK_S = 0.08  # how often (in audio) a turn's first word is looked for
CANDIDATE_GAP_S = 0.5  # speech with no word followed by this much silence is forgotten
INCOMPLETE_CONFIDENCE = 0.25  # the end-of-turn confidence after words that do not end a sentence
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*$")
# Each setting: the query parameter / Configure threshold, its range and Flux's default.
_RANGES = {
    "eot_threshold": (0.5, 1.0, 0.7),
    "eager_eot_threshold": (0.3, 0.9, None),
    "eot_timeout_ms": (500, 60000, 5000),
}


@dataclass
class FluxConnection:
    """What one `/v2/listen` connection carried, for tests to assert on."""

    query: dict[str, str]
    keyterms: list[str]
    authorization: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    audio_bytes: int = 0
    audio_messages: int = 0
    controls: list[str] = field(default_factory=list)  # "CloseStream", "Configure", …
    sent: list[dict] = field(default_factory=list)  # every message sent, in order
    sent_at: list[float] = field(default_factory=list)  # time.monotonic() of each
    closed: bool = False

    def events(self, event: str) -> list[dict]:
        """The `TurnInfo` messages of one event, e.g. "EndOfTurn"."""
        return [m for m in self.sent if m["type"] == "TurnInfo" and m["event"] == event]

    @property
    def turns(self) -> list[str]:
        """The transcript of every turn that ended."""
        return [m["transcript"] for m in self.events("EndOfTurn")]

    def sent_at_event(self, event: str) -> list[float]:
        """When each `TurnInfo` of one event was sent (time.monotonic())."""
        return [
            at
            for m, at in zip(self.sent, self.sent_at, strict=True)
            if m["type"] == "TurnInfo" and m["event"] == event
        ]


def settings_error(values: dict[str, str]) -> str | None:
    """What is wrong with the turn settings in a query or a Configure message, if anything."""
    for name, (low, high, _default) in _RANGES.items():
        value = values.get(name)
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"{name} must be a number, got {value!r}"
        if not low <= number <= high:
            return f"{name} must be between {low} and {high}, got {value}"
    return None


class _Turns:
    """One stream's turn detector: 20 ms frames in, Flux messages out."""

    def __init__(self, conn: FluxConnection, recognizer: Recognizer, eot_silence_secs: float):
        self.conn, self.recognizer, self.eot_silence_secs = conn, recognizer, eot_silence_secs
        query = conn.query
        self.rate = int(query["sample_rate"])
        self.frame_bytes = self.rate // 50 * 2
        self.multi = query["model"] == "flux-general-multi"
        self.language = query.get("language_hint", "en")
        self.settings = {
            name: _value(query.get(name), default) for name, (*_, default) in _RANGES.items()
        }
        self.pending = bytearray()
        self.sequence = 0
        self.position = 0  # samples of whole frames processed
        self.turn_index = 0
        self.window_start = 0  # where this turn (or the silence before it) began, in samples
        self.turn_start = 0  # where the speech of the turn (or candidate) began, in samples
        self.last_update = 0
        self.audio: bytearray | None = None  # since the first speech of a turn or candidate
        self.open = False  # a StartOfTurn was sent; its EndOfTurn was not
        self.speech_frames = self.silent_frames = 0
        self.eager = False  # an EagerEndOfTurn is standing
        self._heard: tuple[int, Recognition] | None = None  # cached by speech frames heard

    def connected(self) -> dict:
        """The `Connected` message that opens the stream."""
        return self.message({"type": "Connected"})

    def audio_in(self, data: bytes) -> list[dict]:
        """Take binary audio; return the messages it brings about, in order."""
        self.conn.audio_bytes += len(data)
        self.conn.audio_messages += 1
        self.pending += data
        out: list[dict] = []
        while len(self.pending) >= self.frame_bytes:
            out += self._frame(bytes(self.pending[: self.frame_bytes]))
            del self.pending[: self.frame_bytes]
        return out

    def configure(self, message: dict) -> dict:
        """Apply a `Configure`; answer `ConfigureSuccess` or `ConfigureFailure`."""
        thresholds = message.get("thresholds") or {}
        problem = settings_error(thresholds) if isinstance(thresholds, dict) else "bad thresholds"
        if problem:
            failure = {"type": "ConfigureFailure", "error_code": "INVALID_SETTINGS"}
            return self.message(failure | {"description": problem})
        self.settings |= {k: _value(v, None) for k, v in thresholds.items() if k in _RANGES}
        if isinstance(message.get("keyterms"), list):
            self.conn.keyterms = [str(term) for term in message["keyterms"]]
        applied = {"thresholds": dict(self.settings), "keyterms": self.conn.keyterms}
        return self.message({"type": "ConfigureSuccess"} | applied)

    def force_end(self) -> list[dict]:
        """`ForceEndTurn`: end the open turn now, on the audio heard so far."""
        return [self._end_of_turn("manual")] if self.open else []

    def close(self) -> list[dict]:
        """`CloseStream`: what the audio received says, as an `Update`; no `EndOfTurn`."""
        return [self._update()]

    def _frame(self, frame: bytes) -> list[dict]:
        speech = is_speech(frame)
        self.position += len(frame) // 2
        if self.audio is None and speech:
            self.audio, self.speech_frames, self.silent_frames = bytearray(), 0, 0
            self._heard = None
            self.turn_start = self.position - len(frame) // 2
        if self.audio is not None:
            self.audio += frame
            self.speech_frames += speech
            self.silent_frames = 0 if speech else self.silent_frames + 1
        event = self._open_turn_event(speech) if self.open else self._start_of_turn()
        if event is not None:
            self.last_update = self.position
            return [event]
        if self.position - self.last_update >= UPDATE_EVERY_S * self.rate:
            self.last_update = self.position
            return [self._update()]
        return []

    def _start_of_turn(self) -> dict | None:
        if self.audio is None:
            return None
        if self.silent_frames * 0.02 >= CANDIDATE_GAP_S:  # a noise, not words: forget it
            self.audio = None
            return None
        chunk = max(1, round(CHUNK_S * self.rate)) * 2
        if len(self.audio) % chunk or not self._recognized().words:
            return None
        self.open, self.eager, self.window_start = True, False, self.turn_start
        return self._turn_info("StartOfTurn")

    def _open_turn_event(self, speech: bool) -> dict | None:
        if speech:
            if self.eager:
                self.eager = False
                return self._turn_info("TurnResumed")
            return None
        silence_ms = self.silent_frames * 20
        confidence = self._confidence()
        threshold = self.settings["eot_threshold"]
        if threshold < 1.0 and confidence >= threshold:
            return self._end_of_turn("model")
        if silence_ms >= self.settings["eot_timeout_ms"]:
            return self._end_of_turn("timeout")
        eager = self.settings["eager_eot_threshold"]
        if eager is not None and not self.eager and confidence >= eager:
            if self._recognized().transcript:  # Flux's EagerEndOfTurn is never empty
                self.eager = True
                return self._turn_info("EagerEndOfTurn")
        return None

    def _confidence(self) -> float:
        """How sure the turn is over: grows with the silence, capped unless a sentence ended."""
        if not self.open or self.speech_frames == 0:
            return 0.0
        grown = min(1.0, self.silent_frames * 0.02 / self.eot_silence_secs)
        finished = _SENTENCE_END.search(self._recognized().transcript)
        return round(grown if finished else min(grown, INCOMPLETE_CONFIDENCE), 3)

    def _end_of_turn(self, trigger: str) -> dict:
        message = self._turn_info("EndOfTurn") | {"trigger": trigger}
        self.open, self.eager, self.audio, self._heard = False, False, None, None
        self.turn_index += 1
        self.window_start = self.position
        return message

    def _update(self) -> dict:
        return self._turn_info("Update")

    def _recognized(self) -> Recognition:
        """What the turn's audio says (recognized again only once more speech has come)."""
        if self.audio is None:
            return Recognition("", [], 0.0)
        if self._heard is None or self._heard[0] != self.speech_frames:
            self._heard = (
                self.speech_frames,
                self.recognizer.recognize(bytes(self.audio), self.rate),
            )
        return self._heard[1]

    def _turn_info(self, event: str) -> dict:
        heard = self._recognized() if self.open or event == "StartOfTurn" else None
        words = [{"word": w.word, "confidence": 0.99} for w in heard.words] if heard else []
        message = {
            "type": "TurnInfo",
            "event": event,
            "turn_index": self.turn_index,
            "audio_window_start": round(self.window_start / self.rate, 3),
            "audio_window_end": round(self.position / self.rate, 3),
            "transcript": " ".join(w["word"] for w in words),
            "words": words,
            "end_of_turn_confidence": self._confidence(),
        }
        if self.multi:
            message["languages"] = [self.language] if words else []
        return self.message(message)

    def message(self, body: dict) -> dict:
        """A server message: `type`, `request_id` and the next `sequence_id`, then `body`."""
        message = {"type": body["type"], "request_id": self.conn.request_id}
        message |= {"sequence_id": self.sequence} | body
        self.sequence += 1
        return message


def _value(raw, default: float | None) -> float | None:
    """A setting's number (a whole one stays whole), or `default` when it is not given."""
    if raw is None:
        return default
    number = float(raw)
    return int(number) if number.is_integer() and "." not in str(raw) else number


class DeepgramFluxStandIn(LocalServer):
    """Deepgram Flux's turn-based transcription WebSocket, served on 127.0.0.1.

    Knobs: `eot_silence_secs` of silence after a finished sentence for the end-of-turn
    confidence to reach 1 (0.4: the default `eot_threshold` 0.7 ends a turn 0.28 s into the
    silence); `connect_delay` seconds before the handshake completes; `reject_connections`
    upgrades refused with 503 before serving again; `api_key` to accept only that key;
    `recognizer` (default: the recordings in the model's language, `recognizer_for`).
    Tests read `connections` (one `FluxConnection` each) and `refused` (HTTP statuses).
    """

    def __init__(
        self,
        *,
        recognizer: Recognizer | None = None,
        api_key: str | None = None,
        eot_silence_secs: float = 0.4,
        connect_delay: float = 0.0,
        reject_connections: int = 0,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.recognizer, self.api_key = recognizer, api_key
        self.eot_silence_secs, self.connect_delay = eot_silence_secs, connect_delay
        self.reject_connections = reject_connections
        self.connections: list[FluxConnection] = []
        self.refused: list[int] = []

    def routes(self) -> list[web.RouteDef]:
        """Serve `/v2/listen`."""
        return [web.get("/v2/listen", self._listen)]

    def _refusal(self, request: web.Request) -> web.Response | None:
        """Flux's answer to an upgrade it refuses (401 bad token, 400 bad parameters), or None."""
        if self.reject_connections > 0:
            self.reject_connections -= 1
            return refuse(503, "SERVICE_UNAVAILABLE", "The stand-in was told to refuse.")
        refused = refusal(request, api_key=self.api_key)
        if refused is not None:
            return refused
        if request.query.get("model") not in MODELS:
            return refuse(400, "Bad Request", f"model must be one of {', '.join(MODELS)}.")
        problem = settings_error(dict(request.query))
        return refuse(400, "Bad Request", f"{problem}.") if problem else None

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        answer = self._refusal(request)
        if answer is not None:
            self.refused.append(answer.status)
            return answer
        await asyncio.sleep(self.connect_delay)
        query = request.query
        conn = FluxConnection(
            dict(query), query.getall("keyterm", []), request.headers["Authorization"]
        )
        ws = web.WebSocketResponse()
        ws.headers["dg-request-id"] = conn.request_id
        await ws.prepare(request)
        self.connections.append(conn)
        language = query.get("language_hint", "en")
        turns = _Turns(conn, self.recognizer or recognizer_for(language), self.eot_silence_secs)
        logger.debug(f"Deepgram Flux stand-in: connection {conn.request_id} opened")
        try:
            await _send(ws, conn, [turns.connected()])
            await self._serve(ws, conn, turns)
        except ConnectionResetError:
            pass  # the client left; nothing more can reach it
        finally:
            conn.closed = True
            logger.debug(f"Deepgram Flux stand-in: connection {conn.request_id} closed")
        return ws

    async def _serve(self, ws: web.WebSocketResponse, conn: FluxConnection, turns: _Turns) -> None:
        """Answer audio and control messages until the client closes or sends CloseStream."""
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                await _send(ws, conn, turns.audio_in(message.data))
                continue
            if message.type != WSMsgType.TEXT:
                return
            control = _control(message.data)
            if control is None:
                error = {"type": "Error", "code": "UNPARSABLE_CLIENT_MESSAGE"}
                error["description"] = "Could not parse a text message as a Flux control message."
                await _send(ws, conn, [turns.message(error)])
                await ws.close(code=1011)
                return
            conn.controls.append(control["type"])
            if control["type"] == "CloseStream":
                await _send(ws, conn, turns.close())
                await ws.close()
                return
            answer = turns.configure(control) if control["type"] == "Configure" else None
            await _send(ws, conn, [answer] if answer else turns.force_end())


async def _send(ws: web.WebSocketResponse, conn: FluxConnection, messages: list[dict]) -> None:
    for message in messages:
        await ws.send_str(json.dumps(message))
        conn.sent.append(message)
        conn.sent_at.append(time.monotonic())


def _control(text: str) -> dict | None:
    """The control message in `text`, or None if it is not one Flux knows."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    known = isinstance(message, dict) and message.get("type") in CONTROLS
    return message if known else None
