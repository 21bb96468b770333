"""The one place where declared providers become Pipecat services."""

from dataclasses import dataclass

from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService

from pipelines.declaration import LLM, STT, TTS, Bot
from processors.buffered_deepgram_stt import BufferedDeepgramSTTService
from processors.openai_llm import ClosingOpenAILLMService
from processors.sentence_deepgram_tts import SentenceDeepgramTTSService


@dataclass(frozen=True)
class ProviderAccess:
    """Credentials and base URLs of the providers (production or local stand-ins)."""

    deepgram_api_key: str
    deepgram_base_url: str
    openai_api_key: str
    openai_base_url: str


def make_stt(stt: STT, access: ProviderAccess) -> STTService:
    """Speech to text for the declared provider."""
    return BufferedDeepgramSTTService(
        api_key=access.deepgram_api_key,
        base_url=access.deepgram_base_url,
        sample_rate=8000,
        settings=BufferedDeepgramSTTService.Settings(
            model=stt.model, language=stt.language, interim_results=True, punctuate=True
        ),
    )


def make_llm(llm: LLM, bot: Bot, access: ProviderAccess) -> LLMService:
    """The declared language model, streaming, with the bot's system prompt."""
    return ClosingOpenAILLMService(
        api_key=access.openai_api_key,
        base_url=access.openai_base_url,
        settings=ClosingOpenAILLMService.Settings(
            model=llm.model, system_instruction=bot.system_prompt, temperature=llm.temperature
        ),
    )


def make_tts(tts: TTS, access: ProviderAccess) -> TTSService:
    """Text to speech for the declared provider, 8 kHz linear16 over a WebSocket."""
    return SentenceDeepgramTTSService(
        api_key=access.deepgram_api_key,
        base_url=access.deepgram_base_url,
        sample_rate=8000,
        encoding="linear16",
        settings=SentenceDeepgramTTSService.Settings(voice=tts.voice),
    )
