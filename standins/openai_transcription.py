"""OpenAI transcription stand-in: `POST /v1/audio/transcriptions`, a WAV in, its words out.

The request is a multipart form, as the openai SDK sends it: `file` (the caller's utterance as
a WAV), `model`, and optionally `language`, `prompt`, `temperature`, `response_format` and
`include[]`. The WAV's speech is recognized by a `speech.Recognizer`, so known recordings come
back with their real words; the answer is OpenAI's JSON (`{"text": …, "usage": …}`) or plain
text. Errors are OpenAI's: `{"error": {"message", "type", "param", "code"}}`.
"""

import asyncio
import io
import json
import math
import time
import uuid
import wave
from dataclasses import dataclass, field

from aiohttp import web

from standins.http_server import LocalServer
from standins.speech import Recognizer, recognizer_for

# The transcription models OpenAI lists (openai SDK 3.52 `AudioModel`).
MODELS = (
    "gpt-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe-diarize",
    "whisper-1",
)
FORMATS = ["flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"]
MIN_AUDIO_S = 0.1
_TOKENS_PER_AUDIO_S = 10  # gpt-4o-transcribe bills audio at roughly this many tokens a second


@dataclass
class TranscriptionRequest:
    """One transcription request as it reached the stand-in, and what it was answered."""

    authorization: str | None
    fields: dict[str, str | list[str]] = field(default_factory=dict)  # the form, but the file
    filename: str | None = None
    file_type: str | None = None  # the file part's content type
    sample_rate: int = 0
    audio: bytes = b""  # the WAV's 16-bit PCM
    transcript: str | None = None
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived
    answered_at: float | None = None

    @property
    def model(self) -> str | None:
        """The `model` field."""
        value = self.fields.get("model")
        return value if isinstance(value, str) else None

    @property
    def duration(self) -> float:
        """Seconds of audio in the file."""
        return len(self.audio) / 2 / self.sample_rate if self.sample_rate else 0.0


class _Refused(Exception):
    """A request OpenAI answers with an error."""

    def __init__(self, status: int, message: str, param: str | None = None, code=None):
        super().__init__(message)
        self.response = _error(status, message, param, code)


def _error(status: int, message: str, param: str | None = None, code=None) -> web.Response:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


class OpenAITranscriptionStandIn(LocalServer):
    """Serves `POST /v1/audio/transcriptions` like api.openai.com.

    Knobs are plain attributes: `latency` (seconds before answering), `fail_next` (answer the
    next N requests with HTTP 500), `api_key` (None: any bearer key is accepted), `recognizer`
    (default: the recordings in the request's `language`, `recognizer_for`). Tests read
    `requests` (one `TranscriptionRequest` each, refused ones included).
    """

    def __init__(
        self,
        *,
        recognizer: Recognizer | None = None,
        latency: float = 0.0,
        fail_next: int = 0,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.recognizer, self.latency = recognizer, latency
        self.fail_next, self.api_key = fail_next, api_key
        self.requests: list[TranscriptionRequest] = []

    def routes(self) -> list[web.RouteDef]:
        """Serve the transcriptions route."""
        return [web.post("/v1/audio/transcriptions", self._transcriptions)]

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        recorded = TranscriptionRequest(request.headers.get("Authorization"))
        self.requests.append(recorded)
        try:
            self._check_auth(recorded)
            await _read_form(request, recorded)
            response = await self._answer(recorded)
        except _Refused as refused:
            response = refused.response
        recorded.status, recorded.answered_at = response.status, time.monotonic()
        return response

    def _check_auth(self, recorded: TranscriptionRequest) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            message = "The server had an error while processing your request. Sorry about that!"
            raise _Refused(500, message)
        auth = recorded.authorization or ""
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise _Refused(401, "You didn't provide an API key.")
        if self.api_key is not None and auth[7:] != self.api_key:
            raise _Refused(401, "Incorrect API key provided.", code="invalid_api_key")

    async def _answer(self, recorded: TranscriptionRequest) -> web.Response:
        form, response_format = recorded.fields, _response_format(recorded)
        language = form.get("language")
        recognizer = self.recognizer or recognizer_for(
            language if isinstance(language, str) else "en"
        )
        heard = recognizer.recognize(recorded.audio, recorded.sample_rate)
        recorded.transcript = heard.transcript
        await asyncio.sleep(self.latency)
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}"}
        if response_format == "text":
            return web.Response(text=heard.transcript + "\n", headers=headers)
        body: dict = {"text": heard.transcript, "usage": _usage(recorded, heard.transcript)}
        if response_format == "verbose_json":
            body |= _verbose(recorded, heard.transcript, language)
        elif "logprobs" in form.get("include[]", []):
            body["logprobs"] = [
                {"token": word, "logprob": -0.01, "bytes": list(word.encode())}
                for word in heard.transcript.split()
            ]
        return web.json_response(body, headers=headers)


def _response_format(recorded: TranscriptionRequest) -> str:
    """The answer's format, if this model and stand-in can give it."""
    response_format = recorded.fields.get("response_format", "json")
    if response_format not in ("json", "text", "verbose_json"):
        message = f"This stand-in answers json, text or verbose_json, not {response_format!r}."
        raise _Refused(400, message, "response_format")
    if response_format == "verbose_json" and recorded.model != "whisper-1":
        message = (
            f"response_format 'verbose_json' is not compatible with model '{recorded.model}'. "
            "Use 'json' or 'text' instead."
        )
        raise _Refused(400, message, "response_format", "unsupported_value")
    if recorded.fields.get("stream") == "true":
        raise _Refused(400, "This stand-in does not stream transcriptions.", "stream")
    return response_format


async def _read_form(request: web.Request, recorded: TranscriptionRequest) -> None:
    """Read the multipart form into `recorded`; refuse what OpenAI refuses."""
    if not request.content_type.startswith("multipart/form-data"):
        raise _Refused(400, "Expected a multipart/form-data request body.")
    form = await request.post()
    upload = None
    for name, value in form.items():
        if isinstance(value, web.FileField):
            upload = value if name == "file" else upload
        elif name.endswith("[]"):
            recorded.fields.setdefault(name, [])
            recorded.fields[name].append(str(value))  # type: ignore[union-attr]
        else:
            recorded.fields[name] = str(value)
    if upload is None:
        raise _Refused(400, "Missing required parameter: 'file'.", "file")
    if not recorded.model:
        raise _Refused(400, "Missing required parameter: 'model'.", "model")
    if recorded.model not in MODELS:
        message = f"The model `{recorded.model}` does not exist or you do not have access to it."
        raise _Refused(404, message, None, "model_not_found")
    recorded.filename, recorded.file_type = upload.filename, upload.content_type
    recorded.audio, recorded.sample_rate = _pcm(upload.file.read())
    if recorded.duration < MIN_AUDIO_S:
        message = f"Audio file is too short. Minimum audio length is {MIN_AUDIO_S} seconds."
        raise _Refused(400, message, "file", "audio_too_short")


def _pcm(data: bytes) -> tuple[bytes, int]:
    """The 16-bit mono PCM and rate of a WAV file; other files are refused as OpenAI would."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise _Refused(400, "This stand-in reads 16-bit mono WAV files only.", "file")
            return w.readframes(w.getnframes()), w.getframerate()
    except (wave.Error, EOFError):
        message = f"Invalid file format. Supported formats: {json.dumps(FORMATS)}"
        raise _Refused(400, message, "file", "invalid_value") from None


def _usage(recorded: TranscriptionRequest, text: str) -> dict:
    if recorded.model == "whisper-1":
        return {"type": "duration", "seconds": math.ceil(recorded.duration)}
    audio = math.ceil(recorded.duration * _TOKENS_PER_AUDIO_S)
    prompt = recorded.fields.get("prompt", "")
    text_tokens = len(prompt.split()) if isinstance(prompt, str) else 0
    output = len(text.split())
    details = {"text_tokens": text_tokens, "audio_tokens": audio}
    return {
        "type": "tokens",
        "input_tokens": audio + text_tokens,
        "input_token_details": details,
        "output_tokens": output,
        "total_tokens": audio + text_tokens + output,
    }


def _verbose(recorded: TranscriptionRequest, text: str, language) -> dict:
    duration = round(recorded.duration, 2)
    segment = {"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": f" {text}"}
    segment |= {"tokens": [], "temperature": 0.0, "avg_logprob": -0.1}
    segment |= {"compression_ratio": 1.0, "no_speech_prob": 0.01}
    named = {"en": "english", "es": "spanish"}.get(language or "en", language)
    return {"task": "transcribe", "language": named, "duration": duration, "segments": [segment]}
