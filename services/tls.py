"""One TLS context per process for every provider client (HTTP and WebSocket)."""

import ssl
from functools import cache


@cache
def shared_tls() -> ssl.SSLContext:
    """The process's TLS context."""
    # Building one (loading the CA bundle) costs ~40 ms: once per process, not per call.
    return ssl.create_default_context()
