"""Call-record faults: the database goes down mid-call (SQLite locked, PostgreSQL stopped).

The call must go on as if nothing happened; the server logs one line; once the database is
back, the whole record is written: every turn, the end, the usage.
"""

import asyncio
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import aiohttp
from loguru import logger

from harness.faults import Fault, Outcome, bot_with, dial, heard_sentences, spoken_texts
from harness.postgres import ThrowawayPostgres
from recordings import RECORDINGS
from standins.script import BOOKING_REPLY, GREETING

API_TOKEN = "faults-api-token-0123456789"
RECORD_WAIT_SECS = 20.0  # the database back → the record complete (the writer's backoff is 5 s)


@dataclass
class Database:
    """A real database the scenario can take down and bring back."""

    url: str
    take_down: Callable[[], Awaitable[None]]
    bring_back: Callable[[], Awaitable[None]]


@dataclass
class RecordsRun:
    """A call through a database outage: the outcome and its evidence."""

    outcome: Outcome
    record: dict | None = None
    held: int = 0  # changes the writer held while the database was down
    api_while_down: int = 0  # HTTP status of GET /calls while it was down
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message), WARNING+


@asynccontextmanager
async def sqlite_database() -> AsyncIterator[Database]:
    """A SQLite file; "down" is another process's exclusive lock on it (writes time out)."""
    with tempfile.TemporaryDirectory(prefix="bot-records-") as directory:
        path = Path(directory) / "calls.db"
        lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

        async def take_down() -> None:
            await asyncio.to_thread(lock.execute, "BEGIN EXCLUSIVE")

        async def bring_back() -> None:
            await asyncio.to_thread(lock.execute, "COMMIT")

        try:
            yield Database(f"sqlite:///{path}", take_down=take_down, bring_back=bring_back)
        finally:
            lock.close()


@asynccontextmanager
async def postgresql_database() -> AsyncIterator[Database]:
    """A PostgreSQL server of its own; "down" is the server stopped (immediate shutdown)."""
    server = await asyncio.to_thread(ThrowawayPostgres().start)
    try:
        url = await asyncio.to_thread(server.new_database)
        yield Database(
            url,
            take_down=partial(asyncio.to_thread, server.stop),
            bring_back=partial(asyncio.to_thread, server.start),
        )
    finally:
        await asyncio.to_thread(server.remove)


async def database_down_mid_call(kind: str) -> RecordsRun:
    """Greeting heard; the database goes down; a booking asked and answered; hang-up; back."""
    logs: list[tuple[str, str]] = []
    sink = logger.add(
        lambda m: logs.append((m.record["level"].name, m.record["message"])), level="WARNING"
    )
    opened = sqlite_database() if kind == "sqlite" else postgresql_database()
    try:
        async with opened as database:
            env = {"DATABASE_URL": database.url, "API_TOKEN": API_TOKEN}
            async with bot_with(env=env) as (bot, standins):
                call = await dial(bot)
                await call.listen()
                await database.take_down()
                await call.say(RECORDINGS / "book_table.wav")
                await call.listen(timeout=10)
                await call.hang_up()
                await _ended(bot.app.state.calls)
                held = bot.app.state.records.writer.pending
                api_while_down = await _api_status(bot.url)
                await database.bring_back()
                record = await finished_record(bot.url, call.call_sid)
                heard = heard_sentences(call, spoken_texts(standins))
    finally:
        logger.remove(sink)
    return judge(RecordsRun(Outcome(False, heard), record, held, api_while_down, logs))


def judge(run: RecordsRun) -> RecordsRun:
    """The call unaffected, one log line, the whole record written once the database is back."""
    problems = []
    if " ".join(run.outcome.heard) != f"{GREETING} {BOOKING_REPLY}":
        problems.append(f"the caller heard {run.outcome.heard}")
    down = [m for _, m in run.logs if "database is unavailable" in m]
    if len(down) != 1:
        problems.append(f"{len(down)} log lines about the database being down, expected 1")
    if others := [m for level, m in run.logs if level in ("ERROR", "CRITICAL")]:
        problems.append(f"logged errors: {others}")
    if run.api_while_down not in (200, 503):  # SQLite's readers still read past the lock
        problems.append(f"GET /calls answered {run.api_while_down} while the database was down")
    if not run.held:
        problems.append("nothing was held while the database was down")
    turns = (run.record or {}).get("turns", [])
    if [t["speaker"] for t in turns] != ["bot", "caller", "bot"]:
        problems.append(f"the record's turns: {[t['speaker'] for t in turns]}")
    elif turns[2]["heard"] != BOOKING_REPLY or turns[2]["latency_ms"] is None:
        problems.append(f"the reply's record: {turns[2]}")
    if run.record and run.record["end_reason"] != "caller_hung_up":
        problems.append(f"end_reason {run.record['end_reason']}")
    run.outcome.survived = not problems
    run.outcome.problems = problems
    run.outcome.figures = f"{run.held} changes held while down; record complete: {len(turns)} turns"
    return run


async def _ended(calls: dict) -> None:
    for _ in range(100):  # the server lets go of the call within a second of the hang-up
        if not calls:
            return
        await asyncio.sleep(0.05)


async def _api_status(url: str) -> int:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(f"{url}/calls") as response,
    ):
        return response.status


async def finished_record(url: str, call_sid: str, *, min_turns: int = 3) -> dict | None:
    """The call's record from the API (`API_TOKEN`) once complete: ended, `min_turns` turns."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECORD_WAIT_SECS
    async with aiohttp.ClientSession(headers=headers) as session:
        while loop.time() < deadline:
            async with session.get(f"{url}/calls/{call_sid}") as response:
                if response.status == 200:
                    record = await response.json()
                    if record["ended_at"] and len(record["turns"]) >= min_turns:
                        return record
            await asyncio.sleep(0.2)
    return None


async def _outcome(kind: str) -> Outcome:
    return (await database_down_mid_call(kind)).outcome


FAULTS = [
    Fault(
        "database down mid-call (SQLite)",
        "another process locks the records' SQLite file from the greeting to after the hang-up",
        partial(_outcome, "sqlite"),
    ),
    Fault(
        "database down mid-call (PostgreSQL)",
        "the PostgreSQL server is stopped from the greeting to after the hang-up",
        partial(_outcome, "postgresql"),
    ),
]
