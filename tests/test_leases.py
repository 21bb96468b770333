"""MAX_CALLS over many instances sharing PostgreSQL: leases, a dead instance, an outage.

Real PostgreSQL servers (Debian's binaries, `harness.postgres`), never a mock: without them
these tests fail, saying how to install them.
"""

import asyncio
import time

import pytest

from harness.postgres import ThrowawayPostgres
from server.leases import LeasedAdmission
from server.shared_database import RETRY_SECS, DatabaseUnavailable, SharedDatabase

# Short times, so that expiring and settling take a second, not ten.
FAST = {"lease_secs": 1.0, "renew_secs": 0.25, "settle_secs": 0.0}


async def instance(url: str, capacity: int | None, name: str, **times) -> LeasedAdmission:
    """A server instance's admission: an engine of its own, renewing its leases."""
    admission = LeasedAdmission(SharedDatabase(url), capacity, instance=name, **FAST | times)
    admission.start()
    return admission


async def closed(*admissions: LeasedAdmission) -> None:
    for admission in admissions:
        await admission.close()
        await admission.database.close()


async def test_two_instances_admit_exactly_max_calls_between_them_in_a_burst(postgres, migrated):
    url = await migrated(postgres.new_database())
    a, b = await instance(url, 5, "host-a"), await instance(url, 5, "host-b")
    try:
        burst = await asyncio.gather(*(admission.admit() for admission in [a, b] * 12))
        leases = [lease for lease in burst if lease]
        assert len(leases) == 5
        assert await a.count() == await b.count() == 5
        assert not await a.has_room() and not await b.has_room()
        assert await a.count_here() + await b.count_here() == 5
        await leases[0].release()
        await leases[0].release()  # twice is harmless
        assert await b.count() == 4 and await b.has_room()
        assert await b.admit() is not None and await a.admit() is None
    finally:
        await closed(a, b)


async def test_a_dead_instances_calls_stop_counting_within_the_lease_time(postgres, migrated):
    url = await migrated(postgres.new_database())
    alive = await instance(url, 3, "alive")
    dead = LeasedAdmission(SharedDatabase(url), 3, instance="dead", **FAST)  # never renews
    try:
        assert await dead.admit() and await dead.admit() and await alive.admit()
        assert await alive.count() == 3 and await alive.admit() is None
        started = time.monotonic()
        while await alive.count() > 1:
            await asyncio.sleep(0.1)
        assert time.monotonic() - started <= FAST["lease_secs"] + 0.3
        await asyncio.sleep(3 * FAST["lease_secs"])  # the live call's lease is renewed
        assert await alive.count() == 1 and await alive.count_here() == 1
        assert await alive.admit() and await alive.admit()
    finally:
        await closed(alive, dead)


async def test_with_postgresql_down_new_calls_are_refused_and_live_ones_counted_again_after(
    log_lines, migrated
):
    server = ThrowawayPostgres().start()
    try:
        url = await migrated(server.new_database())
        admission = await instance(url, 3, "here", settle_secs=3.0)
        other = await instance(url, 3, "there", settle_secs=3.0)
        held = [await admission.admit(), await admission.admit(), await other.admit()]
        server.stop()
        with pytest.raises(DatabaseUnavailable, match=r"call database \(PostgreSQL .*unreachable"):
            await admission.admit()
        with pytest.raises(DatabaseUnavailable):
            await other.count()
        await asyncio.sleep(2 * FAST["lease_secs"])  # renewals fail; every lease lapses
        await held[2].release()  # a call ends during the outage: its lease just expires
        server.start()
        await asyncio.sleep(RETRY_SECS)  # until then, a database just failed fails at once
        assert await admission.count() == 3, "a restarted database counts every lease on record"
        await asyncio.sleep(3.0)  # past the settle time: only renewed leases count
        assert await admission.count() == 2 and await other.count_here() == 0
        assert await other.admit() and await other.admit() is None
        await held[0].release()
        assert await admission.count() == 2
    finally:
        await closed(admission, other)
        server.remove()
    down = [line for line in log_lines if "is unreachable" in line]
    assert len(down) == 2, down  # once per process (here, two engines) per outage
    assert len([line for line in log_lines if "is back after" in line]) == 2
