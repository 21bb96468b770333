"""A restaurant's booking system, for the HTTP tools a pipeline declares: a real HTTP server.

It checks each request the way a service receiving the bot's tool calls should: the API key
header and the `X-Bot-Signature` (`sha256=` and the hex HMAC-SHA256 of the raw body, keyed by
the shared secret). Knobs: `delay` (seconds before answering), `status` (answer with that
HTTP error instead). Down: stop it, and its port refuses connections.
"""

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from standins.http_server import LocalServer, pause_unless_closed

API_KEY_HEADER = "X-Api-Key"


@dataclass
class BookingRequest:
    """One request as it reached the service."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    signed: bool = False  # the signature matched the body
    status: int = 0  # what it was answered (0: the client gave up first)

    @property
    def arguments(self) -> dict:
        """The JSON body."""
        return json.loads(self.body or b"{}")


class BookingServiceStandIn(LocalServer):
    """Answers `POST /availability/{date}` with a free table, computed from the request."""

    def __init__(
        self,
        *,
        secret: str,
        api_key: str,
        delay: float = 0.0,
        status: int = 200,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.secret, self.api_key = secret, api_key
        self.delay, self.status = delay, status
        self.requests: list[BookingRequest] = []
        self.answers: list[dict] = []  # the 200 answers, in order

    def routes(self) -> list[web.RouteDef]:
        """Availability by date; any other path is a 404."""
        return [web.post("/availability/{date}", self._availability)]

    async def _availability(self, request: web.Request) -> web.Response:
        body = await request.read()
        recorded = BookingRequest(request.method, request.path, dict(request.headers), body)
        recorded.signed = self._signed(request.headers.get("X-Bot-Signature", ""), body)
        self.requests.append(recorded)
        response = self._refusal(request, recorded) or await self._answer(request, recorded)
        recorded.status = response.status
        return response

    def _signed(self, signature: str, body: bytes) -> bool:
        expected = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(signature, f"sha256={expected}")

    def _refusal(self, request: web.Request, recorded: BookingRequest) -> web.Response | None:
        if request.headers.get(API_KEY_HEADER) != self.api_key:
            return web.json_response({"error": "unknown API key"}, status=401)
        if not recorded.signed:
            return web.json_response({"error": "bad or missing X-Bot-Signature"}, status=401)
        return None

    async def _answer(self, request: web.Request, recorded: BookingRequest) -> web.Response:
        try:
            await pause_unless_closed(request, self.delay)
        except ConnectionResetError:
            return web.Response(status=499)  # nobody is left to read it
        if self.status != 200:
            return web.json_response({"error": "internal error"}, status=self.status)
        asked = recorded.arguments
        date = request.match_info["date"]
        answer = {
            "available": True,
            "date": date,
            "party_size": asked.get("party_size"),
            "time": asked.get("time"),
            "message": f"A table for {asked.get('party_size')} is free {date} at "
            f"{asked.get('time')}.",
        }
        self.answers.append(answer)
        return web.json_response(answer)
