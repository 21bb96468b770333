"""Deepgram: nova-3 live STT and Aura TTS over WebSockets (DEEPGRAM_API_KEY, DEEPGRAM_BASE_URL)."""

from pydantic import Field, field_validator

from pipelines.provider import Options, Provider, ProviderContext
from services.deepgram_stt import DeepgramNovaSTTService
from services.deepgram_tts import DeepgramAuraTTSService

DEFAULT_BASE_URL = "wss://api.deepgram.com"
KEY = "DEEPGRAM_API_KEY"


class NovaOptions(Options):
    """Deepgram live transcription."""

    model: str = Field(default="nova-3-general", min_length=1)
    language: str | None = Field(default=None, description="default: the bot's language")
    keyterms: list[str] = Field(default_factory=list, description="words to favour (nova-3)")

    @field_validator("model")
    @classmethod
    def _listen_model(cls, model: str) -> str:
        if model.startswith("flux"):
            raise ValueError('Flux is its own provider: provider = "deepgram-flux"')
        return model


class AuraOptions(Options):
    """Deepgram Aura voices, e.g. aura-2-thalia-en, aura-2-celeste-es."""

    voice: str = Field(default="aura-2-thalia-en", min_length=1)

    @field_validator("voice")
    @classmethod
    def _aura(cls, voice: str) -> str:
        if not voice.startswith("aura-"):
            raise ValueError("not a Deepgram Aura voice: e.g. aura-2-thalia-en, aura-2-celeste-es")
        return voice


def base_url(context: ProviderContext) -> str:
    """Deepgram's WebSocket base URL (a stand-in's in tests)."""
    return context.access.get("DEEPGRAM_BASE_URL", DEFAULT_BASE_URL)


def make_nova(options: NovaOptions, context: ProviderContext) -> DeepgramNovaSTTService:
    """Live STT with interim results; audio buffered while the socket opens."""
    settings = DeepgramNovaSTTService.Settings(
        model=options.model,
        language=options.language or context.language,
        interim_results=True,
        punctuate=True,
        **({"keyterm": options.keyterms} if options.keyterms else {}),
    )
    return DeepgramNovaSTTService(
        api_key=context.access[KEY],
        base_url=base_url(context),
        sample_rate=context.sample_rate,
        settings=settings,
    )


def make_aura(options: AuraOptions, context: ProviderContext) -> DeepgramAuraTTSService:
    """WebSocket TTS, linear16 at the call's rate, a boundary after every sentence."""
    return DeepgramAuraTTSService(
        api_key=context.access[KEY],
        base_url=base_url(context),
        sample_rate=context.sample_rate,
        settings=DeepgramAuraTTSService.Settings(voice=options.voice),
    )


STT = [Provider("deepgram", "Deepgram nova-3, streaming", NovaOptions, make_nova, lambda _: (KEY,))]
TTS = [Provider("deepgram", "Deepgram Aura, WebSocket", AuraOptions, make_aura, lambda _: (KEY,))]
