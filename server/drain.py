"""Graceful shutdown of one server process: stop admitting calls, let the live ones finish.

On SIGTERM (or SIGINT) the process drains: `/health` answers 503, new calls are refused, the
calls in progress go on for up to `DRAIN_TIMEOUT_SECS`; those still running then hear the
pipeline's `shutdown_goodbye` and are hung up once it has played. Only then does uvicorn close
the listening socket and the process exit (0). A SIGINT during the drain exits at once.
"""

import asyncio
import contextvars
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from loguru import logger

from server.call import Call
from server.shared_database import DatabaseUnavailable

# Bound on the goodbyes: ~5 s of speech played out, then a REST hang-up (retried for ≤12 s).
GOODBYE_TIMEOUT_SECS = 20.0
# Bound on calls cancelled after that: their REST hang-up is all they still do.
CANCEL_TIMEOUT_SECS = 5.0
_SIGNALS = (signal.SIGTERM, signal.SIGINT)

SHUTDOWN_REASON = "the server is shutting down"


class Drain:
    """Ends this process's calls gracefully: waits for them, then says goodbye to the rest.

    `calls`: the live calls by CallSid; the server removes each once it has ended (its REST
    hang-up included) and then calls `call_ended()`. `goodbye`: what a call hears when the
    drain must end it.
    """

    def __init__(
        self,
        calls: dict[str, Call],
        goodbye: Callable[[Call], str],
        *,
        timeout: float,
        goodbye_timeout: float = GOODBYE_TIMEOUT_SECS,
        server_calls: Callable[[], Awaitable[int]] | None = None,
    ):
        """Drain `calls`, waiting `timeout` seconds before saying `goodbye`.

        `server_calls`: the calls of every process of this server on this machine (those
        sharing its port, not other instances'). A process whose own calls have ended stays
        up (answering "draining" and "busy") until theirs have too: were it to exit, a
        request the kernel had just handed it would be reset.
        """
        self.calls = calls
        self.server_calls = server_calls or self._own_calls
        self.goodbye = goodbye
        self.timeout = timeout
        self.goodbye_timeout = goodbye_timeout
        self.draining = False
        self._ended = asyncio.Event()

    async def _own_calls(self) -> int:
        return len(self.calls)

    def call_ended(self) -> None:
        """A call has ended and left `calls`."""
        self._ended.set()

    async def run(self) -> None:
        """Drain: returns once every call has ended (or been cancelled, past every bound)."""
        self.draining = True
        logger.warning(
            f"draining: refusing new calls; {len(self.calls)} call(s) in progress may go on "
            f"for up to {self.timeout:g} s"
        )
        if not await self._wait_for_calls(self.timeout):
            logger.warning(
                f"drain timeout: saying goodbye to the {len(self.calls)} call(s) still running"
            )
            await self._say_goodbyes()
            if not await self._wait_for_calls(self.goodbye_timeout):
                await self._cancel_the_rest()
        await self._wait_for_other_processes(self.timeout + self.goodbye_timeout)
        logger.info(f"drained: {len(self.calls)} call(s) in progress")

    async def _wait_for_other_processes(self, seconds: float) -> None:
        """Stay up while other processes of the server still have calls (`seconds` at most)."""
        try:
            async with asyncio.timeout(seconds):
                while await self.server_calls() > len(self.calls):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)  # other processes': no event tells their end
        except TimeoutError:
            pass
        except DatabaseUnavailable:
            logger.warning("draining: the call database is down; not waiting for other processes")

    async def _wait_for_calls(self, seconds: float) -> bool:
        """Wait up to `seconds` for every call to end; True if they did."""
        try:
            async with asyncio.timeout(seconds):
                while self.calls:
                    self._ended.clear()
                    await self._ended.wait()
                    logger.info(f"draining: {len(self.calls)} call(s) remaining")
        except TimeoutError:
            return False
        return True

    async def _say_goodbyes(self) -> None:
        """Each call says the goodbye and hangs up once it has played (unless already ending)."""
        for call_sid, call in list(self.calls.items()):
            with logger.contextualize(call_sid=call_sid, stream_sid=call.start.stream_sid):
                if await call.say_and_end(self.goodbye(call), SHUTDOWN_REASON):
                    logger.info("draining: saying the shutdown goodbye")
                else:
                    logger.info(f"draining: the call is already ending ({call.lifecycle.reason})")

    async def _cancel_the_rest(self) -> None:
        logger.error(
            f"draining: {len(self.calls)} call(s) did not end within "
            f"{self.goodbye_timeout:g} s of their goodbye; cancelling them"
        )
        for call in list(self.calls.values()):
            if call.worker is not None:
                await call.worker.cancel(reason=SHUTDOWN_REASON)
        await self._wait_for_calls(CANCEL_TIMEOUT_SECS)


class ExitSignals:
    """SIGTERM and SIGINT start a `Drain` instead of stopping uvicorn at once.

    uvicorn's `Server` installs its `handle_exit` for both signals around `serve()` (in a
    single process and in each of its worker processes alike); on SIGTERM it closes the
    listening socket at once, so `/health` could not say "draining". This replaces that handler
    while the app runs and sets the server's `should_exit` itself once the drain is done. Not
    through `handle_exit`: that would re-raise the signal after shutdown (exit 143, not 0).

    A repeated SIGTERM is ignored (uvicorn's supervisor and systemd signal every process of the
    group: workers may get two); a SIGINT during the drain (Ctrl-C twice) exits at once.
    """

    def __init__(self, drain: Drain, server: uvicorn.Server):
        """Drain with `drain`, then stop `server`."""
        self.drain = drain
        self.server = server
        self._task: asyncio.Task | None = None
        self._loop = asyncio.get_running_loop()

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Handle the signals while in the block; uvicorn's handlers are back after it."""
        previous = {sig: signal.signal(sig, self._handle) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, sig: int, _frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of the main thread: hand over to the loop,
        # in a fresh context (not that of whichever call's task was interrupted: its log ids).
        self._loop.call_soon_threadsafe(
            self._on_signal, signal.Signals(sig), context=contextvars.Context()
        )

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._task is None:
            logger.warning(f"{sig.name} received: draining calls, then exiting")
            self._task = self._loop.create_task(self._drain_then_exit(), name="drain")
        elif sig == signal.SIGINT:
            logger.warning("SIGINT during the drain: exiting now, ending calls abruptly")
            self._task.cancel()
            self.server.force_exit = True
            self.server.should_exit = True
        else:
            logger.info(f"{sig.name} received again: already draining")

    async def _drain_then_exit(self) -> None:
        try:
            await self.drain.run()
        finally:
            logger.info("drain done: the server exits")
            self.server.should_exit = True


@contextmanager
def drain_on_exit_signals(drain: Drain) -> Iterator[None]:
    """Within the block, SIGTERM/SIGINT drain calls first; call it from the app's lifespan.

    Does nothing (with a warning) when uvicorn is not the one handling the signals, e.g. when
    it does not run in the main thread.
    """
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    if threading.current_thread() is not threading.main_thread() or not isinstance(
        server, uvicorn.Server
    ):
        logger.warning("uvicorn does not handle SIGTERM here: a shutdown will not drain calls")
        yield
        return
    with ExitSignals(drain, server).installed():
        yield
