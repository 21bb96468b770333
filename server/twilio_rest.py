"""Twilio's REST API for live calls, through the `twilio` library's async client."""

from loguru import logger
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

_CALL_NOT_FOUND = 20404


class TwilioCalls:
    """Ends live calls; one instance per server, its HTTP session shared by every call."""

    def __init__(self, account_sid: str, auth_token: str, *, base_url: str, timeout: float = 10.0):
        """Talk to the REST API at `base_url` (Twilio's, or a compatible local server)."""
        self._http = AsyncTwilioHttpClient(timeout=timeout)
        # environment={}: TWILIO_EDGE/TWILIO_REGION would rewrite the host of base_url.
        self._client = Client(account_sid, auth_token, http_client=self._http, environment={})
        self._client.api.base_url = base_url
        self.base_url = base_url

    async def hang_up(self, call_sid: str) -> bool:
        """End the call; True if it ended now, False if it had already ended or the API failed."""
        try:
            await self._client.calls(call_sid).update_async(status="completed")
        except TwilioRestException as e:
            if e.code == _CALL_NOT_FOUND:
                logger.info(f"call {call_sid} had already ended")
            else:
                logger.error(f"Twilio refused to hang up {call_sid}: HTTP {e.status} {e.msg}")
            return False
        except (OSError, TimeoutError) as e:
            logger.error(f"could not reach Twilio to hang up {call_sid}: {e!r}")
            return False
        logger.info(f"hung up call {call_sid}")
        return True

    async def close(self) -> None:
        """Close the shared HTTP session."""
        await self._http.close()
