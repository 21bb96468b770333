"""All the stand-ins at once, and the environment that points the bot at them."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from standins.deepgram_stt import DeepgramSTTStandIn
from standins.deepgram_tts import DeepgramTTSStandIn
from standins.http_server import LocalServer
from standins.openai_chat import OpenAIChatStandIn
from standins.twilio_rest import TwilioRestStandIn

ACCOUNT_SID = "AC" + "5a" * 16
AUTH_TOKEN = "standin-twilio-auth-token"
DEEPGRAM_KEY = "standin-deepgram-key"
OPENAI_KEY = "standin-openai-key"


class DeepgramStandIn(LocalServer):
    """Deepgram's STT and TTS WebSockets on one host, as DEEPGRAM_BASE_URL expects."""

    def __init__(self, stt: DeepgramSTTStandIn, tts: DeepgramTTSStandIn) -> None:
        super().__init__()
        self.stt = stt
        self.tts = tts

    def routes(self) -> list[web.RouteDef]:
        """`/v1/listen` and `/v1/speak`."""
        return [*self.stt.routes(), *self.tts.routes()]


@dataclass
class StandIns:
    """The running stand-ins; their recordings are what tests assert on."""

    deepgram: DeepgramStandIn
    openai: OpenAIChatStandIn
    twilio: TwilioRestStandIn

    @property
    def stt(self) -> DeepgramSTTStandIn:
        """The Deepgram speech-to-text stand-in."""
        return self.deepgram.stt

    @property
    def tts(self) -> DeepgramTTSStandIn:
        """The Deepgram text-to-speech stand-in."""
        return self.deepgram.tts

    def env(self) -> dict[str, str]:
        """The bot's environment (the DESIGN contract) pointing at these stand-ins."""
        return {
            "DEEPGRAM_API_KEY": DEEPGRAM_KEY,
            "DEEPGRAM_BASE_URL": self.deepgram.ws_url,
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": f"{self.openai.http_url}/v1",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": self.twilio.http_url,
        }


@asynccontextmanager
async def running_standins(
    *,
    stt: DeepgramSTTStandIn | None = None,
    tts: DeepgramTTSStandIn | None = None,
    openai: OpenAIChatStandIn | None = None,
) -> AsyncIterator[StandIns]:
    """Start every stand-in (pass configured ones to set their knobs); stop them on exit."""
    async with AsyncExitStack() as stack:
        deepgram = DeepgramStandIn(stt or DeepgramSTTStandIn(), tts or DeepgramTTSStandIn())
        standins = StandIns(
            deepgram=await stack.enter_async_context(deepgram),
            openai=await stack.enter_async_context(openai or OpenAIChatStandIn()),
            twilio=await stack.enter_async_context(
                TwilioRestStandIn(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
            ),
        )
        yield standins
