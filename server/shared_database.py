"""PostgreSQL as the state every instance of the server shares, and what its outages mean.

With DATABASE_URL at PostgreSQL, the calls admitted (`server.leases`), the stream tokens used
(`server.stream_tokens`) and the answering-machine verdicts (`server.answered_by`) live in the
database, so instances on any number of machines act as one server. Every transaction is
bounded (`OPERATION_TIMEOUT_SECS`, connecting included): a database that does not answer in
time is down, a `DatabaseUnavailable` naming it, which the server turns into refused calls.
While it is down, it is tried again at most once every `RETRY_SECS` (the rest fail at once:
a burst of webhooks does not queue on connections that time out). An outage is logged once
when it starts (with what failed) and once when it ends.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from loguru import logger
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from records.database import where

CONNECT_TIMEOUT_SECS = 2.0
OPERATION_TIMEOUT_SECS = 3.0  # a transaction slower than this: the database is down
RETRY_SECS = 0.5
# What a database that is down, restarting or out of reach raises, through SQLAlchemy or not.
_DOWN = (SQLAlchemyError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class DatabaseUnavailable(Exception):
    """The shared database did not answer: no new call can be counted or claimed now."""


class SharedDatabase:
    """The engine of the shared state, at `url` (`postgresql+asyncpg://…`)."""

    def __init__(self, url: str):
        """Connect to `url` when first used (the schema is the call records' migrations')."""
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_pre_ping=True,  # a connection from before a restart is replaced, not used
            pool_size=4,
            max_overflow=4,
            pool_timeout=OPERATION_TIMEOUT_SECS,
            connect_args={"timeout": CONNECT_TIMEOUT_SECS},
        )
        self.name = where(url)
        self.down_since: float | None = None
        self._failed_at = float("-inf")

    @property
    def unreachable(self) -> str:
        """Why new calls are refused while the database is down."""
        return f"the call database ({self.name}) is unreachable: no new calls until it is back"

    @asynccontextmanager
    async def transaction(self, doing: str) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed at the end of the block.

        `doing` says what for, in the outage's log line. Raises `DatabaseUnavailable` if the
        database fails or takes longer than `OPERATION_TIMEOUT_SECS`.
        """
        if self.down_since is not None and time.monotonic() - self._failed_at < RETRY_SECS:
            raise DatabaseUnavailable(self.unreachable)
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT_SECS):
                async with self.engine.begin() as connection:
                    yield connection
        except _DOWN as e:
            self._went_down(doing, e)
            raise DatabaseUnavailable(self.unreachable) from e
        self._back()

    async def close(self) -> None:
        """Close the engine's connections."""
        await self.engine.dispose()

    def _went_down(self, doing: str, error: BaseException) -> None:
        self._failed_at = time.monotonic()
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.warning(
                f"{self.unreachable} ({doing} failed: {error!r:.200}); calls in progress go on, "
                "retrying"
            )

    def _back(self) -> None:
        if self.down_since is not None:
            logger.warning(
                f"the call database ({self.name}) is back after "
                f"{time.monotonic() - self.down_since:.1f} s"
            )
            self.down_since = None
