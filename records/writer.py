"""The one writer of call records: a bounded backlog drained by a task, never waited on."""

import asyncio
import time

from loguru import logger
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from records.record import CallInfo, Event, Turn
from records.tables import KEYS, TABLES

MAX_PENDING = 20_000  # changes held while the database is down; more are dropped, counted
BATCH = 200
WRITE_TIMEOUT_SECS = 10.0  # a write slower than this counts as the database being down
RETRY_SECS = (0.25, 0.5, 1.0, 2.0, 5.0)
_ORDER = ("calls", "turns", "call_events")  # a call's row before the rows naming it
# Written once: a call's later stream (back from a transfer) does not restart the call.
_KEPT = {"calls": ("started_at", "direction", "from_number", "to_number")}


class RecordWriter:
    """Takes changes to call records at once (`write`) and stores them from its own task.

    Changes to the same row are merged while they wait: the latest state of each row is
    written, so a backlog grows with rows, not with updates. While the database is down
    or slow the backlog waits (one log line when it goes, one when it is back) and is
    written in order when it returns; past `max_pending` rows, new turns and events are
    dropped and counted (a call's own row is always kept).
    """

    def __init__(self, engine: AsyncEngine, *, max_pending: int = MAX_PENDING):
        """Write to `engine`'s database."""
        self.engine = engine
        self.max_pending = max_pending
        self.written = 0
        self.dropped = 0
        self.down_since: float | None = None  # when writes started failing
        self._pending: dict[tuple, tuple[str, dict]] = {}
        self._writing = 0  # rows of the batch being written
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the writing task (on the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="record-writer")

    @property
    def pending(self) -> int:
        """Rows waiting to be written (the batch being written included)."""
        return len(self._pending) + self._writing

    def write(self, call_sid: str, item: CallInfo | Turn | Event) -> None:
        """Queue the current state of `item` (of the call `call_sid`); never waits."""
        table, row = _row(call_sid, item)
        key = (table, *(row[k] for k in KEYS[table]))
        if key not in self._pending and len(self._pending) >= self.max_pending:
            if table != "calls":
                self._drop()
                return
        self._pending[key] = (table, row)
        self._idle.clear()
        self._wake.set()

    async def close(self, within_secs: float = 10.0) -> None:
        """Write what is waiting (for up to `within_secs`), then stop; count what was not."""
        try:
            await asyncio.wait_for(self._idle.wait(), within_secs)
        except TimeoutError:
            self.dropped += len(self._pending)
            logger.error(
                f"call records: {len(self._pending)} changes not written at shutdown "
                f"(the database did not take them within {within_secs:.0f} s)"
            )
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.engine.dispose()

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._take()
                try:
                    async with asyncio.timeout(WRITE_TIMEOUT_SECS):
                        await self._store(batch)
                except (IntegrityError, DataError) as e:  # these rows can never be written
                    self.dropped, self._writing = self.dropped + len(batch), 0
                    logger.opt(exception=e).error(f"call records: {len(batch)} changes refused")
                except (DBAPIError, OSError, TimeoutError) as e:  # down or slow: keep, retry
                    self._put_back(batch)
                    self._went_down(e)
                    await asyncio.sleep(RETRY_SECS[min(failures, len(RETRY_SECS) - 1)])
                    failures += 1
                    continue
                except Exception:  # a bug, not the database: these rows are lost, say so
                    self.dropped, self._writing = self.dropped + len(batch), 0
                    logger.exception(f"call records: {len(batch)} changes could not be written")
                failures, self._writing = 0, 0
                self.written += len(batch)
                self._came_back()
            self._idle.set()

    def _take(self) -> dict[tuple, tuple[str, dict]]:
        keys = list(self._pending)[:BATCH]
        self._writing = len(keys)
        return {key: self._pending.pop(key) for key in keys}

    def _put_back(self, batch: dict[tuple, tuple[str, dict]]) -> None:
        """The failed batch goes first again, but for rows changed since (newer wins)."""
        newer = self._pending
        self._pending = {k: v for k, v in batch.items() if k not in newer} | newer
        self._writing = 0

    async def _store(self, batch: dict[tuple, tuple[str, dict]]) -> None:
        by_table: dict[str, list[dict]] = {}
        for table, row in batch.values():
            by_table.setdefault(table, []).append(row)
        async with self.engine.begin() as connection:
            for name in _ORDER:
                if rows := by_table.get(name):
                    await connection.execute(self._upsert(name), rows)

    def _upsert(self, name: str):
        table = TABLES[name]
        insert = sqlite_insert if self.engine.dialect.name == "sqlite" else postgresql_insert
        statement = insert(table)
        kept = _KEPT.get(name, ())
        changes = {
            c.name: statement.excluded[c.name]
            for c in table.c
            if not c.primary_key and c.name not in kept
        }
        return statement.on_conflict_do_update(index_elements=KEYS[name], set_=changes)

    def _went_down(self, error: Exception) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.warning(
                f"call records: the database is unavailable ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:160] if str(error) else ''}); calls go on, "
                f"their records wait ({len(self._pending)} changes) and are written when it is back"
            )

    def _came_back(self) -> None:
        if self.down_since is not None:
            down = time.monotonic() - self.down_since
            self.down_since = None
            lost = f", {self.dropped} dropped past the bound" if self.dropped else ""
            logger.info(f"call records: the database is back after {down:.1f} s{lost}")

    def _drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            logger.error(
                f"call records: {self.max_pending} changes already wait for the database; "
                f"{self.dropped} dropped so far"
            )


def _row(call_sid: str, item: CallInfo | Turn | Event) -> tuple[str, dict]:
    """The table and row of `item`, as they are now."""
    if isinstance(item, CallInfo):
        return "calls", item.row()
    if isinstance(item, Turn):
        return "turns", {"call_sid": call_sid, **item.row()}
    return "call_events", {"call_sid": call_sid, **item.row()}
