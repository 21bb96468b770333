"""ElevenLabs over its multi-context WebSocket, word-timed (ELEVENLABS_API_KEY, _BASE_URL)."""

from pipecat.services.elevenlabs.tts import ELEVENLABS_MODEL_LANGUAGES, ElevenLabsTTSService
from pydantic import Field, field_validator

from pipelines.provider import Options, Provider, ProviderContext
from services.elevenlabs_tts import LiveContextsElevenLabsTTSService

DEFAULT_BASE_URL = "wss://api.elevenlabs.io"
KEY = "ELEVENLABS_API_KEY"


class ElevenLabsOptions(Options):
    """ElevenLabs voices: a voice id from its library (or a clone of yours)."""

    voice: str = Field(min_length=1, description="an ElevenLabs voice id")
    model: str = Field(
        default="eleven_flash_v2_5", min_length=1, description="or eleven_turbo_v2_5"
    )
    language: str | None = Field(default=None, description="default: the bot's language")
    stability: float | None = Field(default=None, ge=0, le=1, description="0 to 1")
    similarity_boost: float | None = Field(default=None, ge=0, le=1, description="0 to 1")
    speed: float | None = Field(default=None, ge=0.7, le=1.2, description="0.7 to 1.2")

    @field_validator("model")
    @classmethod
    def _streams(cls, model: str) -> str:
        if model.startswith("eleven_v3"):
            raise ValueError("eleven_v3 cannot stream over the multi-context WebSocket")
        return model


def _language(options: ElevenLabsOptions, language: str) -> str:
    """The ISO 639-1 code ElevenLabs takes: `es` for es-419."""
    return (options.language or language).split("-")[0].lower()


def check(options: ElevenLabsOptions, language: str) -> str | None:
    """A model that takes a language code must take the bot's (others detect it)."""
    spoken = ELEVENLABS_MODEL_LANGUAGES.get(options.model)
    code = _language(options, language)
    if spoken is not None and code not in spoken:
        return f"model {options.model!r} does not speak {code!r}; choose another model"
    return None


def make_elevenlabs(
    options: ElevenLabsOptions, context: ProviderContext
) -> LiveContextsElevenLabsTTSService:
    """Raw 16-bit PCM at the call's rate, each word timed by ElevenLabs' alignment."""
    tuning = {
        "stability": options.stability,
        "similarity_boost": options.similarity_boost,
        "speed": options.speed,
    }
    settings = ElevenLabsTTSService.Settings(
        model=options.model,
        voice=options.voice,
        language=_language(options, context.language),
        **{name: value for name, value in tuning.items() if value is not None},
    )
    return LiveContextsElevenLabsTTSService(
        api_key=context.access[KEY],
        url=context.access.get("ELEVENLABS_BASE_URL", DEFAULT_BASE_URL),
        sample_rate=context.sample_rate,  # pcm_8000 on a phone call
        settings=settings,
        # ElevenLabs joins a context's texts as sent, and a word ends only at a space:
        # without one, sentences run together and each one's last word goes untimed.
        append_trailing_space=True,
    )


TTS = [
    Provider(
        "elevenlabs",
        "ElevenLabs (eleven_flash_v2_5), multi-context WebSocket",
        ElevenLabsOptions,
        make_elevenlabs,
        lambda _: (KEY,),
        check=check,
    )
]
