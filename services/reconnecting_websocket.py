"""A provider WebSocket that opens in the background and reopens itself when it fails."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from loguru import logger
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.utils.errors import classify_http_exception
from pipecat.utils.network import QuickFailureTracker, exponential_backoff_time
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from services.tls import shared_tls

Hook = Callable[[], Awaitable[None]]
MessageHook = Callable[[str | bytes], Awaitable[None]]

CLOSE_TIMEOUT_SECS = 2.0  # a closing handshake holds up the pipeline's end by at most this
SEND_TIMEOUT_SECS = 5.0  # a send stalled this long means the peer stopped reading


def websocket_url(url: str, *, name: str) -> str:
    """`url` without a trailing slash; ValueError unless it is a ws:// or wss:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"{name} must be a ws:// or wss:// URL, got {url!r}")
    return url.rstrip("/")


async def _nothing() -> None:
    return None


class ReconnectingWebsocket:
    """One provider WebSocket for a service's whole life, reopened whenever it fails.

    `start` returns at once: the handshake runs in a task of the owner's, so nothing waits
    for it. The owner's hooks run in that task: `on_open` after each handshake, `on_message`
    for each message, `on_close` after each socket that ends (not on `stop`), `on_idle`
    whenever nothing has been sent for `idle_secs` on an open socket.

    | what happens                               | then                                      |
    |--------------------------------------------|-------------------------------------------|
    | a socket up `stable_secs` or more fails    | reopened at once                          |
    | a socket fails sooner, a handshake fails   | reopened after pipecat's backoff (4-10 s) |
    | that, `max_quick_failures` times in a row  | the owner's permanent error; no retry     |
    | the handshake is refused for good          | the owner's permanent error at once       |
    |   (400, 401, 403, 404, 422)                |   (the HTTP status stays on the error)    |
    | the owner is no longer usable              | no retry                                  |
    """

    def __init__(
        self,
        owner: FrameProcessor,
        *,
        provider: str,
        url: Callable[[], str],
        headers: dict[str, str],
        on_message: MessageHook,
        on_open: Hook = _nothing,
        on_close: Hook = _nothing,
        on_idle: Hook = _nothing,
        idle_secs: float = 5.0,
        stable_secs: float = 5.0,
        max_quick_failures: int = 3,
    ) -> None:
        """Connect to `url()` (built anew for each attempt) with `headers`, for `owner`.

        `provider` names the far end in errors and logs, e.g. "Deepgram".
        """
        self._owner = owner
        self._provider = provider
        self._url = url
        self._headers = headers
        self._on_message = on_message
        self._on_open = on_open
        self._on_close = on_close
        self._on_idle = on_idle
        self._idle_secs = idle_secs
        self._failures = QuickFailureTracker(stable_secs, max_quick_failures)
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._last_sent = 0.0

    @property
    def is_open(self) -> bool:
        """Whether a socket is open to send on."""
        return self._ws is not None

    def start(self) -> None:
        """Begin connecting, in the background."""
        self._stopping = False
        self._task = self._owner.create_task(self._run(), f"{self._provider} socket")

    async def send(self, message: bytes | str) -> None:
        """Send one message; ConnectionError if there is no open socket or the send fails."""
        ws = self._ws
        if ws is None:
            raise ConnectionError(f"no {self._provider} socket is open")
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECS):
                await ws.send(message)
        except ConnectionClosed as e:
            raise ConnectionError(f"the {self._provider} socket closed: {e}") from e
        except TimeoutError as e:
            ws.transport.abort()  # its receive loop ends too, and the socket is reopened
            raise ConnectionError(f"{self._provider} stopped reading: send timed out") from e
        self._last_sent = time.monotonic()

    async def stop(self, *, last_message: str | None = None) -> None:
        """Send `last_message` if a socket is open, close it, and make no more attempts."""
        self._stopping = True
        ws, task = self._ws, self._task
        self._task = None
        if ws is not None and last_message is not None:
            try:
                await self.send(last_message)
            except ConnectionError as e:
                logger.debug(f"{self._owner}: could not send {self._provider} {last_message}: {e}")
        if task is not None:
            await self._owner.cancel_task(task)
        if ws is not None:
            await ws.close()

    async def _run(self) -> None:
        while not self._stopping:
            up_secs, failure = await self._connect_and_serve()
            if self._stopping or failure is None or not self._owner.is_usable:
                return
            quick = self._failures.record(up_secs)
            if not quick.is_quick_failure:
                logger.warning(f"{self._owner}: {failure}; reconnecting at once")
                continue
            if quick.should_give_up:
                message = f"{self._provider}: {failure}, {self._failures.count} times in a row"
                await self._owner.push_error(message, force_treat_as_permanent=True)
                return
            wait = exponential_backoff_time(self._failures.count)
            logger.warning(f"{self._owner}: {failure}; reconnecting in {wait:.0f} s")
            await asyncio.sleep(wait)

    async def _connect_and_serve(self) -> tuple[float, str | None]:
        """One socket's life: seconds it was up, and why it ended (None: nothing to retry)."""
        url = self._url()
        try:
            ws = await connect(
                url,
                additional_headers=self._headers,
                ssl=shared_tls() if url.startswith("wss:") else None,
                compression=None,  # raw PCM does not compress: deflate would only cost CPU
                close_timeout=CLOSE_TIMEOUT_SECS,
            )
        except InvalidStatus as e:
            return 0.0, await self._refused(e)
        except (OSError, TimeoutError, WebSocketException) as e:
            return 0.0, f"could not connect to {self._provider}: {e!r}"
        opened_at = time.monotonic()
        ending = await self._serve(ws)
        return time.monotonic() - opened_at, ending

    async def _refused(self, e: InvalidStatus) -> str | None:
        status = e.response.status_code
        reason = e.response.headers.get("dg-error") or e.response.reason_phrase
        message = f"{self._provider} refused the connection (HTTP {status}): {reason}"
        if not classify_http_exception(e).is_permanent:
            return message
        await self._owner.push_error(message, exception=e)  # its category makes it permanent
        return None

    async def _serve(self, ws: ClientConnection) -> str:
        self._ws, self._last_sent = ws, time.monotonic()
        idle = self._owner.create_task(self._watch_idle(), f"{self._provider} idle")
        try:
            await self._on_open()
            async for message in ws:
                await self._on_message(message)
            ending = f"{self._provider} closed the socket ({ws.close_code} {ws.close_reason})"
        except ConnectionClosed as e:
            ending = f"the {self._provider} socket failed: {e}"
        finally:
            self._ws = None
            await self._owner.cancel_task(idle)
        if not self._stopping:
            await ws.close()
            await self._on_close()
        return ending

    async def _watch_idle(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._last_sent + self._idle_secs - time.monotonic()))
            if time.monotonic() - self._last_sent >= self._idle_secs:
                self._last_sent = time.monotonic()
                await self._on_idle()
