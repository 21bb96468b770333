"""The OpenAI Realtime WebSocket: client events out, server events in, as pipecat's models."""

import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from loguru import logger
from pipecat.services.openai.realtime import events
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from services.tls import shared_tls


class RealtimeSocket:
    """One connection to `…/v1/realtime?model=…`, authenticated with a bearer key.

    Sending on a socket not open (yet, or any more) does nothing: whoever reads `events()`
    learns that the connection ended.
    """

    def __init__(self, base_url: str, *, api_key: str, model: str):
        """Connect to `base_url` (ws:// or wss://) for `model`."""
        self.url = f"{base_url}?{urlencode({'model': model})}"
        self._api_key = api_key
        self._ws: ClientConnection | None = None

    async def open(self) -> None:
        """Connect; websockets' errors pass (an `InvalidStatus` carries the HTTP status)."""
        self._ws = await connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self._api_key}"},
            ssl=shared_tls() if self.url.startswith("wss:") else None,
            # base64 audio barely deflates: compressing 50 appends a second costs CPU for ~nothing
            compression=None,
        )

    async def send(self, event: events.ClientEvent) -> None:
        """Send one client event, if the socket is open."""
        if self._ws is None:
            return
        try:
            # model_dump, not model_dump_json: session.update's turns off turn detection there
            await self._ws.send(json.dumps(event.model_dump(exclude_none=True)))
        except ConnectionClosed:
            pass  # `events()` ends: the reader reports it

    async def events(self) -> AsyncIterator[events.ServerEvent]:
        """The server's events, parsed, until the connection closes; unknown types skipped."""
        if self._ws is None:
            return
        try:
            async for message in self._ws:
                event = _parse(message)
                if event is not None:
                    yield event
        except ConnectionClosed as e:
            logger.debug(f"OpenAI Realtime connection closed: {e}")

    async def close(self) -> None:
        """Close the connection (a no-op if it is not open)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()


def _parse(message: str | bytes) -> events.ServerEvent | None:
    try:
        return events.parse_server_event(message)
    except Exception as e:  # pipecat re-raises any parse failure as a bare Exception
        kind = str(e).partition("\n")[0][:200]  # its message ends with the event (audio, even)
        logger.warning(f"OpenAI Realtime: an event that does not parse: {kind}")
        return None
