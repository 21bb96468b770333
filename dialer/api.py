"""The bot server's operator API, as a client: place a call, follow it to its outcome."""

import asyncio
from dataclasses import dataclass

import aiohttp

FOLLOW_EVERY_SECS = 1.0


class APIError(Exception):
    """The API refused a request; the message is its own, with the HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class CallEnd:
    """How a placed call ended, as Twilio reports it."""

    call_sid: str
    outcome: str  # answered, voicemail, busy, no answer, failed
    status: str
    answered_by: str | None
    duration: int | None


class BotAPI:
    """`POST /calls` and `GET /calls/{sid}/status` of the bot at `url`, with bearer `token`."""

    def __init__(self, url: str, token: str, *, follow_every: float = FOLLOW_EVERY_SECS):
        """Talk to the bot server at `url` (its PUBLIC_URL, or where it listens)."""
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self.follow_every = follow_every

    async def place(
        self, to: str, *, pipeline: str | None = None, variables: dict[str, str] | None = None
    ) -> str:
        """Place a call to `to`; its call SID once Twilio has it."""
        body: dict = {"to": to, "variables": variables or {}}
        if pipeline:
            body["pipeline"] = pipeline
        answer = await self._request("POST", "/calls", json=body)
        return answer["call_sid"]

    async def state(self, call_sid: str) -> dict:
        """The call as Twilio describes it now, with its `outcome` once it is over."""
        return await self._request("GET", f"/calls/{call_sid}/status")

    async def ended(self, call_sid: str) -> CallEnd:
        """Follow the call until it is over (polling: Twilio reports to the server, not here)."""
        while True:
            state = await self.state(call_sid)
            if state["outcome"]:
                break
            await asyncio.sleep(self.follow_every)
        return CallEnd(
            call_sid=call_sid,
            outcome=state["outcome"],
            status=state["status"],
            answered_by=state["answered_by"],
            duration=state["duration"],
        )

    async def capacity(self) -> int | None:
        """How many calls the server takes at once (MAX_CALLS), None for no limit."""
        return (await self._request("GET", "/health", ok=(200, 503)))["max_calls"]

    async def _request(self, method: str, path: str, *, ok=(200, 201), **kwargs) -> dict:
        async with (
            aiohttp.ClientSession(headers=self._headers) as session,
            session.request(method, self.url + path, **kwargs) as response,
        ):
            body = await response.json(content_type=None)
            if response.status not in ok:
                raise APIError(response.status, (body or {}).get("error", "no reason given"))
            return body
