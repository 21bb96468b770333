"""Stream-token claims and machine verdicts shared by instances through PostgreSQL (or files).

Real PostgreSQL (`postgres`, Debian's binaries), never a mock: without it these tests fail.
"""

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from records.database import create_engine, database_url, migrate
from server.admission import Admission
from server.answered_by import AnsweredByBox, AnsweredByTable
from server.leases import LeasedAdmission
from server.shared_state import shared_state
from server.stream_tokens import ClaimedSids, ClaimedStreams, StreamTokenError, StreamTokens

SID = "CA" + "c" * 32


@pytest.fixture
async def two_instances(postgres, migrated):
    """The shared state of two server instances on one fresh database."""
    url = await migrated(postgres.new_database())
    instances = [shared_state(url, None, 4) for _ in range(2)]
    yield instances
    for state in instances:
        await state.close()


async def test_a_token_redeemed_on_one_instance_is_refused_on_every_other(two_instances):
    a, b = (StreamTokens("auth-token", claim=state.claims) for state in two_instances)
    token = a.issue(SID)
    assert await b.redeem(token) == SID
    for tokens in (a, b):
        with pytest.raises(StreamTokenError, match="already used .* a replay"):
            await tokens.redeem(token)
    # The same upgrade replayed to both at once: one of them serves it.
    burst = a.issue(SID, "leg-2")
    results = await asyncio.gather(
        *(tokens.redeem(burst) for tokens in (a, b) * 4), return_exceptions=True
    )
    assert results.count(SID) == 1
    assert all(isinstance(r, StreamTokenError) for r in results if r != SID)


async def test_an_expired_claim_is_pruned_and_its_stream_may_be_claimed_again(two_instances):
    a, b = (state.claims for state in two_instances)
    assert isinstance(a, ClaimedStreams)
    assert await a(SID, time.time() - 1) and await b(SID, time.time() + 60)
    assert not await a(SID, time.time() + 60)


async def test_a_verdict_posted_on_one_instance_is_collected_once_on_another(two_instances):
    poster, waiter = (state.answers for state in two_instances)
    assert isinstance(poster, AnsweredByTable)
    waiting = asyncio.create_task(waiter.wait(SID, timeout=5))
    await asyncio.sleep(0.3)
    await poster.post(SID, "machine_end_beep")
    assert await waiting == "machine_end_beep"
    assert await poster.wait(SID, timeout=0.1) is None  # collected: gone
    await waiter.post(SID, "'; DROP TABLE calls; --")
    assert await poster.wait(SID, timeout=0) == "unknown"


async def test_postgresql_holds_the_shared_state_and_sqlite_keeps_files(
    tmp_path, postgres, migrated
):
    url = await migrated(postgres.new_database())
    database = shared_state(url, tmp_path, 3)
    assert isinstance(database.admission, LeasedAdmission)
    assert str(tmp_path) in database.admission.instance
    await database.close()
    files = shared_state(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}", tmp_path, 3)
    assert isinstance(files.admission, Admission) and files.database is None
    assert isinstance(files.claims, ClaimedSids) and isinstance(files.answers, AnsweredByBox)
    await files.close()


async def test_instances_starting_together_make_the_tables_once(postgres):
    url = database_url(postgres.new_database(), Path("."))
    engines = [create_engine(url) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(engine) for engine in engines))  # one at a time
        async with engines[0].connect() as connection:
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            leases = await connection.scalar(text("SELECT count(*) FROM call_leases"))
        assert (version, leases) == ("0002", 0)
    finally:
        for engine in engines:
            await engine.dispose()
