"""OpenAI text-to-speech stand-in: `POST /v1/audio/speech`, text in, streamed 24 kHz PCM out.

The request is JSON, as the openai SDK sends it: `model`, `input` (at most 4096 characters),
`voice`, and optionally `instructions`, `response_format`, `speed` and `stream_format`. The
answer to `response_format: "pcm"` is raw 16-bit little-endian mono at 24 kHz (`audio/pcm`),
streamed with chunked transfer encoding as it is "generated", spoken in the deterministic voice
of `speech.synthesize`; `"wav"` is the same audio behind a WAV header. Errors are OpenAI's:
`{"error": {"message", "type", "param", "code"}}`. A client that stops reading mid-stream (a
barge-in abandoning the response) is recorded as `cancelled`.
"""

import asyncio
import struct
import time
from dataclasses import dataclass, field

from aiohttp import web
from loguru import logger

from standins.http_server import LocalServer, pause_unless_closed
from standins.speech import synthesize

SAMPLE_RATE = 24000  # the only rate OpenAI's pcm output has
MAX_INPUT_CHARS = 4096
# The speech models and voices OpenAI lists (openai SDK 3.52 `SpeechModel`, pipecat's voices).
MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15")
VOICES = (
    "alloy",
    "ash",
    "ballad",
    "cedar",
    "coral",
    "echo",
    "fable",
    "marin",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
)
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
SPOKEN = ("pcm", "wav")  # the formats this stand-in can encode


@dataclass
class SpeechRequest:
    """One speech request as it reached the stand-in, and how its answer went."""

    authorization: str | None
    body: dict | None = None
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived
    first_byte_at: float | None = None  # when the first audio was written
    audio_bytes: int = 0  # of audio written (after any WAV header)
    completed: bool = False
    cancelled: bool = False  # the client went away before the end of the audio

    def _field(self, name: str):
        return self.body.get(name) if isinstance(self.body, dict) else None

    @property
    def model(self) -> str | None:
        """The `model` field."""
        return self._field("model")

    @property
    def voice(self) -> str | None:
        """The `voice` field."""
        return self._field("voice")

    @property
    def text(self) -> str | None:
        """The `input` field: the text to speak."""
        return self._field("input")

    @property
    def instructions(self) -> str | None:
        """The `instructions` field."""
        return self._field("instructions")


class _Refused(Exception):
    """A request OpenAI answers with an error."""

    def __init__(self, status: int, message: str, param: str | None = None, code=None):
        super().__init__(message)
        kind = "server_error" if status >= 500 else "invalid_request_error"
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self.response = web.json_response(body, status=status)


class OpenAISpeechStandIn(LocalServer):
    """Serves `POST /v1/audio/speech` like api.openai.com.

    Knobs, plain attributes that may change between requests: `ttfb` (seconds before the first
    audio), `chunk_ms` (audio per body chunk), `realtime_factor` (None: as fast as possible;
    2.0: twice real time), `fail_next` (answer the next N requests with HTTP 500), `api_key`
    (None: any bearer key is accepted). Tests read `requests` (one `SpeechRequest` each).
    """

    def __init__(
        self,
        *,
        ttfb: float = 0.0,
        chunk_ms: int = 40,
        realtime_factor: float | None = None,
        fail_next: int = 0,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.ttfb, self.chunk_ms, self.realtime_factor = ttfb, chunk_ms, realtime_factor
        self.fail_next = fail_next
        self.api_key = api_key
        self.requests: list[SpeechRequest] = []

    def routes(self) -> list[web.RouteDef]:
        """Serve `/v1/audio/speech`."""
        return [web.post("/v1/audio/speech", self._speech)]

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[SpeechRequest]:
        """Wait until `count` requests have ended (answered, completed or cancelled)."""
        async with asyncio.timeout(timeout):
            while sum(_ended(r) for r in self.requests) < count:
                await asyncio.sleep(0.01)
        return self.requests

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        recorded = SpeechRequest(request.headers.get("Authorization"))
        try:  # read first: a test reading `requests` never sees one half-read
            recorded.body = await request.json()
        except ValueError:
            recorded.body = None
        self.requests.append(recorded)
        try:
            self._check(recorded)
        except _Refused as refused:
            recorded.status = refused.response.status
            return refused.response
        recorded.status = 200
        return await self._stream(request, recorded)

    def _check(self, recorded: SpeechRequest) -> None:
        """Raise the error OpenAI would answer this request with, if any."""
        if self.fail_next > 0:
            self.fail_next -= 1
            raise _Refused(500, "The server had an error while processing your request.")
        auth = recorded.authorization or ""
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise _Refused(401, "You didn't provide an API key.")
        if self.api_key is not None and auth[7:] != self.api_key:
            raise _Refused(401, "Incorrect API key provided.", code="invalid_api_key")
        body = recorded.body
        if not isinstance(body, dict):
            raise _Refused(400, "We could not parse the JSON body of your request.")
        for name in ("model", "input", "voice"):
            if not body.get(name):
                raise _Refused(400, f"Missing required parameter: '{name}'.", name)
        _check_body(body)

    async def _stream(self, request: web.Request, recorded: SpeechRequest) -> web.StreamResponse:
        kind = recorded.body.get("response_format", "mp3")
        response = web.StreamResponse(headers={"Content-Type": f"audio/{kind}"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await pause_unless_closed(request, self.ttfb)
            if kind == "wav":
                await response.write(_wav_header())
            await self._write_audio(request, response, recorded)
            await response.write_eof()
            recorded.completed = True
        except (ConnectionResetError, asyncio.CancelledError) as exc:
            # The client closing the stream surfaces as a dropped transport or a failed write,
            # or as a cancelled handler (aiohttp cancels handlers on shutdown).
            recorded.cancelled = True
            logger.debug(f"speech stream closed by the client after {recorded.audio_bytes} bytes")
            if isinstance(exc, asyncio.CancelledError):
                raise
        return response

    async def _write_audio(
        self, request: web.Request, response: web.StreamResponse, recorded: SpeechRequest
    ) -> None:
        """Write the audio in chunk_ms pieces, paced at realtime_factor if one is set."""
        loop = asyncio.get_running_loop()
        size = SAMPLE_RATE * self.chunk_ms // 1000 * 2
        started, pending = loop.time(), b""
        # Words are synthesized independently, so word by word adds up to synthesize(text),
        # and the first audio leaves without waiting for the whole input to be synthesized.
        words = recorded.text.split()
        for n, word in enumerate(words, 1):
            pending += (await asyncio.to_thread(synthesize, word, SAMPLE_RATE)).pcm
            while len(pending) >= size or (n == len(words) and pending):
                chunk, pending = pending[:size], pending[size:]
                await response.write(chunk)
                recorded.first_byte_at = recorded.first_byte_at or time.monotonic()
                recorded.audio_bytes += len(chunk)
                pace = self.realtime_factor
                due = recorded.audio_bytes / 2 / SAMPLE_RATE / pace if pace else 0.0
                await pause_unless_closed(request, started + due - loop.time())


def _check_body(body: dict) -> None:
    """Raise the 400 OpenAI answers an invalid speech request with, if any."""
    if body["model"] not in MODELS:
        raise _Refused(400, f"Invalid model: {body['model']!r}.", "model", "invalid_model")
    if not isinstance(body["input"], str) or len(body["input"]) > MAX_INPUT_CHARS:
        message = f"'input' must be a string of at most {MAX_INPUT_CHARS} characters."
        raise _Refused(400, message, "input", "string_above_max_length")
    if body["voice"] not in VOICES:
        message = f"Invalid value: {body['voice']!r}. Supported values are: {', '.join(VOICES)}."
        raise _Refused(400, message, "voice", "invalid_value")
    kind = body.get("response_format", "mp3")
    if kind not in FORMATS:
        message = f"Invalid value: {kind!r}. Supported values are: {', '.join(FORMATS)}."
        raise _Refused(400, message, "response_format", "invalid_value")
    if kind not in SPOKEN:
        message = f"This stand-in encodes {' and '.join(SPOKEN)} only, not {kind!r}."
        raise _Refused(400, message, "response_format", "unsupported_value")
    speed = body.get("speed", 1.0)
    if not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        raise _Refused(400, "'speed' must be between 0.25 and 4.0.", "speed", "invalid_value")
    if body.get("stream_format", "audio") != "audio":
        message = "This stand-in streams raw audio only (stream_format 'audio')."
        raise _Refused(400, message, "stream_format", "unsupported_value")


def _wav_header() -> bytes:
    """A streaming WAV header for 24 kHz 16-bit mono, its sizes unknown (0xFFFFFFFF) as OpenAI's."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + (b"data" + struct.pack("<I", unknown))
    )


def _ended(recorded: SpeechRequest) -> bool:
    return recorded.status not in (0, 200) or recorded.completed or recorded.cancelled
