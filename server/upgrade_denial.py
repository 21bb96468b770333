"""Refusing a WebSocket upgrade with an HTTP status, before it is accepted."""

import logging

from fastapi import WebSocket
from fastapi.responses import PlainTextResponse
from starlette.status import WS_1013_TRY_AGAIN_LATER

_DENIAL_EXTENSION = "websocket.http.response"
_SPURIOUS = "ASGI callable returned without completing handshake."


class _DenialLogFilter(logging.Filter):
    """Drops the ERROR uvicorn's websockets-sansio logs after each denial response.

    It never marks a denied handshake complete (uvicorn PR #3138, open at 0.54), so every
    refused upgrade would log that error; only as many lines as denials sent are dropped.
    """

    def __init__(self):
        super().__init__()
        self.pending = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.pending and record.getMessage() == _SPURIOUS:
            self.pending -= 1
            return False
        return True


_filter = _DenialLogFilter()
logging.getLogger("uvicorn.error").addFilter(_filter)


async def refuse_upgrade(websocket: WebSocket, status: int, reason: str) -> None:
    """Answer the upgrade with HTTP `status` and `reason` where the server can, else 403.

    Without the ASGI denial-response extension a close before accept is all there is
    (uvicorn answers it with 403); its code says to try again later.
    """
    if _DENIAL_EXTENSION in websocket.scope.get("extensions", {}):
        _filter.pending += 1
        try:
            await websocket.send_denial_response(PlainTextResponse(reason, status_code=status))
        except BaseException:
            _filter.pending -= 1  # uvicorn logs nothing when the send fails
            raise
    else:
        await websocket.close(code=WS_1013_TRY_AGAIN_LATER, reason=reason[:120])
