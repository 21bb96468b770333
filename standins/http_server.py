"""Run an aiohttp application on a loopback port for the lifetime of an `async with`."""

import asyncio

from aiohttp import web


class LocalServer:
    """An aiohttp app served on 127.0.0.1; port 0 picks a free port.

    Subclasses add routes in `routes()` and keep what they observed as attributes, so tests
    can assert what reached them.
    """

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = 0

    def routes(self) -> list[web.RouteDef]:
        """The routes this stand-in serves."""
        raise NotImplementedError

    @property
    def http_url(self) -> str:
        """Base URL for HTTP clients, e.g. ``http://127.0.0.1:5123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base URL for WebSocket clients, e.g. ``ws://127.0.0.1:5123``."""
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> "LocalServer":
        """Start serving; returns self with `port` set."""
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.add_routes(self.routes())
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Stop serving and close every open connection."""
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()


async def pause_unless_closed(request: web.Request, seconds: float) -> None:
    """Sleep `seconds`, yielding once at least; raise ConnectionResetError if the client left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        # aiohttp drops `request.transport` when the peer closes, before any write fails.
        if request.transport is None:
            raise ConnectionResetError("client closed the connection")
        left = deadline - loop.time()
        await asyncio.sleep(min(max(left, 0.0), 0.01))
        if left <= 0:
            return
