"""A post-call webhook receiver, as a customer runs one: takes POSTs, records them, can fail."""

from dataclasses import dataclass

from aiohttp import web

from standins.http_server import LocalServer


@dataclass
class Delivery:
    """One POST that reached the receiver."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class WebhookReceiver(LocalServer):
    """Answers POST /calls-webhook with 204 (or 500 for the first `fail_next`)."""

    path = "/calls-webhook"

    def __init__(self, *, port: int = 0, fail_next: int = 0) -> None:
        super().__init__(port=port)
        self.fail_next = fail_next
        self.deliveries: list[Delivery] = []

    def routes(self) -> list[web.RouteDef]:
        """The one webhook route."""
        return [web.post(self.path, self._receive)]

    @property
    def url(self) -> str:
        """The URL to configure as the webhook."""
        return self.http_url + self.path

    async def _receive(self, request: web.Request) -> web.Response:
        status = 500 if self.fail_next > 0 else 204
        self.fail_next -= 1
        body = await request.read()
        self.deliveries.append(Delivery(request.path, dict(request.headers), body, status))
        return web.Response(status=status)
