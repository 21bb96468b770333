"""One TLS context per process for every provider client (HTTP and WebSocket)."""

import ssl
from functools import cache


@cache
def shared_tls() -> ssl.SSLContext:
    """The process's TLS context."""
    # Building one (loading the CA bundle) costs ~40 ms: once per process, not per call.
    return ssl.create_default_context()


class SharedTLSWebsocket:
    """Mixin for a pipecat WebSocket service: connect with the process's TLS context.

    Stock pipecat builds a context per connection (~40 ms of blocking work per call).
    """

    async def _websocket_connect(self, uri: str, **kwargs):
        if uri.startswith("wss:"):
            kwargs.setdefault("ssl", shared_tls())
        return await super()._websocket_connect(uri, **kwargs)  # type: ignore[misc]
