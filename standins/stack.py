"""All the stand-ins at once, and the environment that points the bot at them."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from standins.anthropic_messages import AnthropicMessagesStandIn
from standins.cartesia_tts import CartesiaTTSStandIn
from standins.deepgram_flux import DeepgramFluxStandIn
from standins.deepgram_stt import DeepgramSTTStandIn
from standins.deepgram_tts import DeepgramTTSStandIn
from standins.elevenlabs_tts import ElevenLabsTTSStandIn
from standins.http_server import LocalServer
from standins.openai_chat import OpenAIChatStandIn
from standins.openai_realtime import OpenAIRealtimeStandIn
from standins.openai_speech import OpenAISpeechStandIn
from standins.openai_transcription import OpenAITranscriptionStandIn
from standins.twilio_rest import TwilioRestStandIn

ACCOUNT_SID = "AC" + "5a" * 16
AUTH_TOKEN = "standin-twilio-auth-token"
DEEPGRAM_KEY = "standin-deepgram-key"
OPENAI_KEY = "standin-openai-key"
CARTESIA_KEY = "standin-cartesia-key"
ELEVENLABS_KEY = "standin-elevenlabs-key"
ANTHROPIC_KEY = "standin-anthropic-key"


class SharedHost(LocalServer):
    """Several stand-ins of one vendor on one host, as the vendor's one base URL expects.

    Each part is a stand-in whose `routes()` are served here; it is not started on its own.
    """

    def __init__(self, *parts: LocalServer) -> None:
        super().__init__()
        self.parts = parts

    def routes(self) -> list[web.RouteDef]:
        """Every part's routes."""
        return [route for part in self.parts for route in part.routes()]


@dataclass
class StandIns:
    """The running stand-ins; their recordings are what tests assert on."""

    deepgram_host: SharedHost
    openai_host: SharedHost
    twilio: TwilioRestStandIn
    stt: DeepgramSTTStandIn  # Deepgram /v1/listen
    tts: DeepgramTTSStandIn  # Deepgram /v1/speak
    openai: OpenAIChatStandIn  # OpenAI /v1/chat/completions
    flux: DeepgramFluxStandIn  # Deepgram /v2/listen
    openai_stt: OpenAITranscriptionStandIn  # OpenAI /v1/audio/transcriptions
    openai_tts: OpenAISpeechStandIn  # OpenAI /v1/audio/speech
    realtime: OpenAIRealtimeStandIn  # OpenAI /v1/realtime (WebSocket)
    cartesia_host: SharedHost
    cartesia: CartesiaTTSStandIn  # Cartesia /tts/websocket
    elevenlabs_host: SharedHost
    elevenlabs: ElevenLabsTTSStandIn  # ElevenLabs /v1/text-to-speech/{voice}/multi-stream-input
    anthropic_host: SharedHost
    anthropic: AnthropicMessagesStandIn  # Anthropic /v1/messages

    def env(self) -> dict[str, str]:
        """The bot's environment (the DESIGN contract) pointing at these stand-ins."""
        return {
            "DEEPGRAM_API_KEY": DEEPGRAM_KEY,
            "DEEPGRAM_BASE_URL": self.deepgram_host.ws_url,
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": f"{self.openai_host.http_url}/v1",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": self.twilio.http_url,
            "CARTESIA_API_KEY": CARTESIA_KEY,
            "CARTESIA_BASE_URL": self.cartesia_host.ws_url,
            "ELEVENLABS_API_KEY": ELEVENLABS_KEY,
            "ELEVENLABS_BASE_URL": self.elevenlabs_host.ws_url,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "ANTHROPIC_BASE_URL": self.anthropic_host.http_url,
        }


@asynccontextmanager
async def running_standins(
    *,
    stt: DeepgramSTTStandIn | None = None,
    tts: DeepgramTTSStandIn | None = None,
    openai: OpenAIChatStandIn | None = None,
    flux: DeepgramFluxStandIn | None = None,
    openai_stt: OpenAITranscriptionStandIn | None = None,
    openai_tts: OpenAISpeechStandIn | None = None,
    realtime: OpenAIRealtimeStandIn | None = None,
    cartesia: CartesiaTTSStandIn | None = None,
    elevenlabs: ElevenLabsTTSStandIn | None = None,
    anthropic: AnthropicMessagesStandIn | None = None,
) -> AsyncIterator[StandIns]:
    """Start every stand-in (pass configured ones to set their knobs); stop them on exit."""
    stt, tts, openai = (
        stt or DeepgramSTTStandIn(),
        tts or DeepgramTTSStandIn(),
        openai or OpenAIChatStandIn(),
    )
    flux, openai_stt = flux or DeepgramFluxStandIn(), openai_stt or OpenAITranscriptionStandIn()
    openai_tts, cartesia = openai_tts or OpenAISpeechStandIn(), cartesia or CartesiaTTSStandIn()
    realtime = realtime or OpenAIRealtimeStandIn()
    elevenlabs = elevenlabs or ElevenLabsTTSStandIn(api_key=ELEVENLABS_KEY)
    anthropic = anthropic or AnthropicMessagesStandIn(api_key=ANTHROPIC_KEY)
    async with AsyncExitStack() as stack:
        standins = StandIns(
            deepgram_host=await stack.enter_async_context(SharedHost(stt, tts, flux)),
            openai_host=await stack.enter_async_context(
                SharedHost(openai, openai_stt, openai_tts, realtime)
            ),
            twilio=await stack.enter_async_context(
                TwilioRestStandIn(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
            ),
            stt=stt,
            tts=tts,
            openai=openai,
            flux=flux,
            openai_stt=openai_stt,
            openai_tts=openai_tts,
            realtime=realtime,
            cartesia_host=await stack.enter_async_context(SharedHost(cartesia)),
            cartesia=cartesia,
            elevenlabs_host=await stack.enter_async_context(SharedHost(elevenlabs)),
            elevenlabs=elevenlabs,
            anthropic_host=await stack.enter_async_context(SharedHost(anthropic)),
            anthropic=anthropic,
        )
        yield standins
