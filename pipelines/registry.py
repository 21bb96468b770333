"""Every provider a pipeline file may name, by stage: the one place names become services."""

from pipelines.provider import Provider
from pipelines.providers import (
    anthropic,
    cartesia,
    deepgram,
    deepgram_flux,
    elevenlabs,
    openai_llm,
    openai_realtime,
    openai_stt,
    openai_tts,
)


def _by_name(*groups: list[Provider]) -> dict[str, Provider]:
    return {provider.name: provider for group in groups for provider in group}


STAGES: dict[str, dict[str, Provider]] = {
    "stt": _by_name(deepgram.STT, deepgram_flux.STT, openai_stt.STT),
    "llm": _by_name(openai_llm.LLM, anthropic.LLM),
    "tts": _by_name(deepgram.TTS, openai_tts.TTS, cartesia.TTS, elevenlabs.TTS),
    "speech_to_speech": _by_name(openai_realtime.SPEECH_TO_SPEECH),
}
