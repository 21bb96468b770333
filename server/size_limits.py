"""Size limits at the edges: webhook bodies (413) and WebSocket messages (close 1009).

Twilio's webhook bodies are ~1–2 KB and its Media Streams messages ~300 bytes.
"""

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
# The protocol-level cap (uvicorn's `ws_max_size`): a message over it closes its socket with
# 1009. The serializer drops, with a log line, messages over its own 64 KiB limit and the call
# goes on; this cap sits well above that (a 1 MB junk message is only dropped) and bounds what
# one socket may make the server buffer.
MAX_WEBSOCKET_MESSAGE_BYTES = 2 * 1024 * 1024
_MESSAGE_TOO_BIG = 1009


class SizeLimits:
    """Pure ASGI middleware: HTTP bodies over `max_body_bytes` get 413 before the app runs.

    The body is read (at most the limit) before the app sees it, whether or not the request
    declares a Content-Length, and replayed to the app. WebSockets pass through; one closed
    for a message over the protocol's cap (1009) is logged.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = MAX_BODY_BYTES):
        """Wrap `app`."""
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.app(scope, _logging_oversized_close(scope, receive), send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            return await self._refuse(scope, send, f"Content-Length {declared}")
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: let the app see it
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return await self._refuse(scope, send, f"over {size} streamed bytes")
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, what: str) -> None:
        logger.warning(
            f"refused {scope['method']} {scope['path']}: body {what} is over the "
            f"{self.max_body_bytes}-byte limit (413)"
        )
        body = f"request body over {self.max_body_bytes} bytes\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the rest of the body is never read
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _logging_oversized_close(scope: Scope, receive: Receive) -> Receive:
    async def receive_and_log() -> Message:
        message = await receive()
        if message["type"] == "websocket.disconnect" and message.get("code") == _MESSAGE_TOO_BIG:
            logger.warning(
                f"closed WS {scope['path']}: a message over the "
                f"{MAX_WEBSOCKET_MESSAGE_BYTES}-byte limit (1009)"
            )
        return message

    return receive_and_log
