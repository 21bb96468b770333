"""OpenAI transcription: each utterance, once the VAD says it ended, as one WAV upload.

OPENAI_API_KEY; OPENAI_BASE_URL (the same server as the chat completions).
"""

from pydantic import Field

from pipelines.provider import Options, Provider, ProviderContext
from pipelines.providers.openai_llm import DEFAULT_BASE_URL, KEY
from services.openai_stt import ClosingOpenAISTTService


class TranscriptionOptions(Options):
    """OpenAI `POST /v1/audio/transcriptions`, e.g. gpt-transcribe, gpt-4o-mini-transcribe."""

    model: str = Field(
        default="gpt-transcribe", min_length=1, description="or gpt-4o-mini-transcribe, whisper-1"
    )
    language: str | None = Field(default=None, description="default: the bot's language")
    prompt: str | None = Field(
        default=None, min_length=1, description="words to expect: names, menu items"
    )


def make_transcription(
    options: TranscriptionOptions, context: ProviderContext
) -> ClosingOpenAISTTService:
    """Segmented STT at the call's rate; the VAD's start and stop delimit each upload."""
    language = (options.language or context.language).split("-")[0].lower()
    settings = ClosingOpenAISTTService.Settings(
        model=options.model, language=language, prompt=options.prompt
    )
    return ClosingOpenAISTTService(
        api_key=context.access[KEY],
        base_url=context.access.get("OPENAI_BASE_URL", DEFAULT_BASE_URL),
        sample_rate=context.sample_rate,
        settings=settings,
    )


STT = [
    Provider(
        "openai",
        "OpenAI transcription, one upload per utterance",
        TranscriptionOptions,
        make_transcription,
        lambda _: (KEY,),
    )
]
