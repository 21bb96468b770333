"""OpenAI Realtime: speech to speech over one WebSocket (OPENAI_API_KEY, OPENAI_BASE_URL)."""

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pipecat.services.openai.realtime import events
from pydantic import Field

from pipelines.provider import Options, Provider, ProviderContext
from services.openai_realtime import RealtimeLLMService

DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY = "OPENAI_API_KEY"
_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


class RealtimeOptions(Options):
    """OpenAI Realtime: it hears the caller and speaks, μ-law both ways at 8 kHz."""

    model: str = Field(default="gpt-realtime", min_length=1)
    voice: str = Field(default="marin", min_length=1, description="e.g. marin, cedar, alloy")
    speed: float | None = Field(default=None, ge=0.25, le=1.5, description="0.25 to 1.5")
    noise_reduction: Literal["near_field", "far_field"] | None = None
    transcription_model: str = Field(
        default="gpt-4o-mini-transcribe",
        min_length=1,
        description="the caller's words, for the record",
    )


def realtime_url(base_url: str) -> str:
    """The Realtime WebSocket URL beside an OpenAI base URL: http(s)://h/v1 → ws(s)://h/v1/realtime."""
    parts = urlsplit(base_url)
    scheme = _WEBSOCKET_SCHEMES.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise ValueError(f"OPENAI_BASE_URL must be an http(s) URL with a host, got {base_url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/realtime", "", ""))


def make_realtime(options: RealtimeOptions, context: ProviderContext) -> RealtimeLLMService:
    """The Realtime service at OPENAI_BASE_URL (a stand-in's in tests), μ-law in and out."""
    if context.sample_rate != 8000:
        raise ValueError(f"OpenAI Realtime takes μ-law at 8000 Hz, not {context.sample_rate} Hz")
    pcmu = events.PCMUAudioFormat()
    transcription = events.InputAudioTranscription(
        model=options.transcription_model, language=context.language.split("-")[0]
    )
    noise = options.noise_reduction
    audio_in = events.AudioInput(
        format=pcmu,
        transcription=transcription,
        noise_reduction=events.InputAudioNoiseReduction(type=noise) if noise else None,
        turn_detection=False,  # local VAD and turn strategies, unless the pipeline says not
    )
    audio_out = events.AudioOutput(format=pcmu, voice=options.voice, speed=options.speed)
    session = events.SessionProperties(
        model=options.model,
        instructions=context.system_prompt,
        output_modalities=["audio"],
        audio=events.AudioConfiguration(input=audio_in, output=audio_out),
    )
    base_url = context.access.get("OPENAI_BASE_URL", DEFAULT_BASE_URL)
    return RealtimeLLMService(
        api_key=context.access[KEY], base_url=realtime_url(base_url), session=session
    )


SPEECH_TO_SPEECH = [
    Provider(
        "openai-realtime",
        "OpenAI Realtime (gpt-realtime), μ-law passthrough",
        RealtimeOptions,
        make_realtime,
        lambda _: (KEY,),
        turn_ends="either",
    )
]
