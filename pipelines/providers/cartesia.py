"""Cartesia Sonic over its WebSocket, at the call's rate (CARTESIA_API_KEY, CARTESIA_BASE_URL)."""

from pipecat.services.cartesia.tts import CartesiaTTSService, GenerationConfig
from pydantic import Field

from pipelines.provider import Options, Provider, ProviderContext

DEFAULT_BASE_URL = "wss://api.cartesia.ai"
KEY = "CARTESIA_API_KEY"


class SonicOptions(Options):
    """Cartesia Sonic voices: a voice id from Cartesia's library (or a clone of yours)."""

    model: str = Field(default="sonic-3.6", min_length=1, description="or sonic-2, sonic-turbo")
    voice: str = Field(min_length=1, description="a Cartesia voice id")
    language: str | None = Field(default=None, description="default: the bot's language")
    speed: float | None = Field(default=None, ge=0.6, le=1.5, description="0.6 to 1.5 (sonic-3)")
    volume: float | None = Field(default=None, ge=0.5, le=2.0, description="0.5 to 2.0 (sonic-3)")
    emotion: str | None = Field(default=None, min_length=1, description="e.g. calm, content")


def make_sonic(options: SonicOptions, context: ProviderContext) -> CartesiaTTSService:
    """Pipecat's Cartesia service: raw 16-bit PCM at the call's rate, timed word by word.

    Cartesia's word timestamps reach the transport as pipecat's timed word frames, which is
    all it needs to know what a caller heard. Sentences end with a space: Cartesia joins a
    context's transcripts verbatim ("there.How" otherwise).
    """
    tuning = {"speed": options.speed, "volume": options.volume, "emotion": options.emotion}
    generation = {name: value for name, value in tuning.items() if value is not None}
    settings = CartesiaTTSService.Settings(
        model=options.model,
        voice=options.voice,
        language=options.language or context.language,
        generation_config=GenerationConfig(**generation) if generation else None,
    )
    base_url = context.access.get("CARTESIA_BASE_URL", DEFAULT_BASE_URL)
    return CartesiaTTSService(
        api_key=context.access[KEY],
        url=f"{base_url}/tts/websocket",
        sample_rate=context.sample_rate,
        encoding="pcm_s16le",
        container="raw",
        append_trailing_space=True,
        settings=settings,
    )


TTS = [
    Provider("cartesia", "Cartesia Sonic, WebSocket", SonicOptions, make_sonic, lambda _: (KEY,))
]
