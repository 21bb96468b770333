"""How many calls every instance of the server admits at once, counted in PostgreSQL by leases.

Each admitted call holds a row in `call_leases` that expires `lease_secs` after it was last
renewed; every process renews its calls' leases every `renew_secs` from a background task, so
a crashed instance's calls stop counting within `lease_secs`. Admitting takes a
transaction-scoped advisory lock, counts the live leases and inserts one: a burst over any
number of instances admits exactly the capacity. Times are the database's own clock.

The database down or out of reach: `admit` and `count` raise `DatabaseUnavailable` (the server
refuses new calls, naming the database), the calls in progress go on and their renewals are
retried. A renewal re-asserts every live lease of the process (an upsert), so once the database
is back the count is right again within `renew_secs`, whatever the outage lost. A restarted
database has missed the renewals of its downtime: for `settle_secs` after it starts, every
lease on record counts, expired or not, so that new calls do not take the places of calls in
progress whose processes have not renewed yet.
"""

import asyncio
import contextlib
import uuid

from loguru import logger
from sqlalchemy import text

from server.shared_database import CONNECT_TIMEOUT_SECS, DatabaseUnavailable, SharedDatabase

LEASE_SECS = 10.0
RENEW_SECS = 2.0
# A renewal's round after a restart: its period, plus a connection that timed out meanwhile.
SETTLE_SECS = 2 * RENEW_SECS + CONNECT_TIMEOUT_SECS
_ADMISSION_LOCK = 7_341_403  # PostgreSQL advisory lock: one admission at a time, everywhere

_LIVE = (
    "(expires_at > now() OR now() < pg_postmaster_start_time() + make_interval(secs => :settle))"
)
_PRUNE = text(f"DELETE FROM call_leases WHERE NOT {_LIVE}")
_COUNT = text(f"SELECT count(*) FROM call_leases WHERE {_LIVE}")
_COUNT_HERE = text(f"SELECT count(*) FROM call_leases WHERE instance = :instance AND {_LIVE}")
_INSERT = text(
    "INSERT INTO call_leases (lease_id, instance, expires_at) "
    "VALUES (:lease_id, :instance, now() + make_interval(secs => :lease))"
)
_RENEW = text(
    "INSERT INTO call_leases (lease_id, instance, expires_at) "
    "SELECT lease_id, :instance, now() + make_interval(secs => :lease) "
    "FROM unnest(CAST(:lease_ids AS text[])) AS lease_id "
    "ON CONFLICT (lease_id) DO UPDATE SET expires_at = EXCLUDED.expires_at"
)
_DELETE = text("DELETE FROM call_leases WHERE lease_id = :lease_id")


class Lease:
    """One admitted call's lease; `release()` deletes it (a dead process's simply expires)."""

    def __init__(self, admission: "LeasedAdmission", lease_id: str):
        """The lease `lease_id`, renewed by `admission`."""
        self._admission = admission
        self.lease_id = lease_id

    async def release(self) -> None:
        """Free the place; releasing twice is harmless."""
        await self._admission.release(self.lease_id)


class LeasedAdmission:
    """A count of admitted calls over every instance sharing `database`, with a limit.

    `capacity`: calls admitted at once over them all; None: no limit (still counted).
    `instance`: this server on this machine (its worker processes share it), for `count_here`.
    """

    def __init__(
        self,
        database: SharedDatabase,
        capacity: int | None,
        *,
        instance: str,
        lease_secs: float | None = None,
        renew_secs: float | None = None,
        settle_secs: float | None = None,
    ):
        """Count calls in `database`, admitting at most `capacity`.

        The times default to the module's `LEASE_SECS`, `RENEW_SECS`, `SETTLE_SECS` as they
        are when it is made (a test may shorten them for a whole server).
        """
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be at least 1 or None (got {capacity})")
        self.lease_secs = LEASE_SECS if lease_secs is None else lease_secs
        self.renew_secs = RENEW_SECS if renew_secs is None else renew_secs
        self.settle_secs = SETTLE_SECS if settle_secs is None else settle_secs
        if self.renew_secs >= self.lease_secs:
            raise ValueError(f"renew_secs ({self.renew_secs}) must be shorter than lease_secs")
        self.capacity = capacity
        self.database = database
        self.instance = instance
        self._live: set[str] = set()  # this process's leases, renewed until released
        self._renewing = asyncio.Lock()  # a release's delete never precedes a renewal's upsert
        self._renewer: asyncio.Task | None = None
        self._lapsed = False  # the last renewal failed

    def start(self) -> None:
        """Start renewing this process's leases (on the running event loop)."""
        self._renewer = asyncio.get_running_loop().create_task(self._renew(), name="lease-renewer")

    async def close(self) -> None:
        """Stop renewing, and delete the leases still held (best effort)."""
        if self._renewer:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        for lease_id in list(self._live):
            await self.release(lease_id)

    async def admit(self) -> Lease | None:
        """A lease for one more call, or None when `capacity` calls hold one already."""
        lease_id = uuid.uuid4().hex
        async with self.database.transaction("admitting a call") as connection:
            if self.capacity is not None:
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADMISSION_LOCK}
                )
                await connection.execute(_PRUNE, {"settle": self.settle_secs})
                held = await connection.scalar(_COUNT, {"settle": self.settle_secs})
                if held >= self.capacity:
                    return None
            await connection.execute(
                _INSERT, {"lease_id": lease_id, "instance": self.instance, "lease": self.lease_secs}
            )
        self._live.add(lease_id)
        return Lease(self, lease_id)

    async def count(self) -> int:
        """Calls holding a live lease now, over every instance."""
        async with self.database.transaction("counting calls") as connection:
            return await connection.scalar(_COUNT, {"settle": self.settle_secs})

    async def count_here(self) -> int:
        """Calls holding a live lease now from this instance's processes."""
        async with self.database.transaction("counting calls") as connection:
            parameters = {"settle": self.settle_secs, "instance": self.instance}
            return await connection.scalar(_COUNT_HERE, parameters)

    async def has_room(self) -> bool:
        """Whether one more call would be admitted now."""
        return self.capacity is None or await self.count() < self.capacity

    async def renew(self) -> None:
        """Extend (or write again) the lease of each call of this process still going on."""
        async with self._renewing:
            lease_ids = sorted(self._live)
            if not lease_ids:
                self._lapsed = False
                return
            parameters = {"lease_ids": lease_ids, "instance": self.instance}
            async with self.database.transaction(f"renewing {len(lease_ids)} lease(s)") as c:
                await c.execute(_RENEW, parameters | {"lease": self.lease_secs})
        if self._lapsed:
            logger.info(f"call leases: {len(lease_ids)} re-asserted after the database outage")
            self._lapsed = False

    async def release(self, lease_id: str) -> None:
        """Stop renewing `lease_id` and delete it; if the database is down, it expires."""
        if lease_id not in self._live:
            return
        self._live.discard(lease_id)
        async with self._renewing:
            with contextlib.suppress(DatabaseUnavailable):
                async with self.database.transaction("releasing a lease") as connection:
                    await connection.execute(_DELETE, {"lease_id": lease_id})

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.renew_secs)
            try:
                await self.renew()
            except DatabaseUnavailable:
                self._lapsed = True  # logged once per outage by the database; retried
