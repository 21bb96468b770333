"""OpenAI speech: one streamed `POST /v1/audio/speech` per sentence, resampled to the call's rate.

OPENAI_API_KEY; OPENAI_BASE_URL (the same server as the chat completions).
"""

from typing import Literal

from pydantic import Field

from pipelines.provider import Options, Provider, ProviderContext
from pipelines.providers.openai_llm import DEFAULT_BASE_URL, KEY
from services.openai_tts import ResampledOpenAITTSService

Voice = Literal[
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
]


class SpeechOptions(Options):
    """OpenAI text to speech, e.g. gpt-4o-mini-tts (instructions need a gpt-4o model)."""

    model: str = Field(default="gpt-4o-mini-tts", min_length=1, description="or tts-1, tts-1-hd")
    voice: Voice = Field(default="coral", description="e.g. coral, marin, cedar, alloy")
    instructions: str | None = Field(
        default=None, min_length=1, description="how to speak: tone, pace, accent"
    )
    speed: float | None = Field(default=None, ge=0.25, le=4.0, description="0.25 to 4.0")


def make_speech(options: SpeechOptions, context: ProviderContext) -> ResampledOpenAITTSService:
    """HTTP TTS at the call's rate; each sentence's end is marked for the playback tracker."""
    settings = ResampledOpenAITTSService.Settings(
        model=options.model,
        voice=options.voice,
        instructions=options.instructions,
        speed=options.speed,
    )
    return ResampledOpenAITTSService(
        api_key=context.access[KEY],
        base_url=context.access.get("OPENAI_BASE_URL", DEFAULT_BASE_URL),
        sample_rate=context.sample_rate,
        settings=settings,
    )


TTS = [
    Provider(
        "openai",
        "OpenAI speech (gpt-4o-mini-tts), one HTTP stream per sentence",
        SpeechOptions,
        make_speech,
        lambda _: (KEY,),
    )
]
