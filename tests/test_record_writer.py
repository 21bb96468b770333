"""The record writer against a real SQLite file: merged rows, an outage, the bound."""

import asyncio
import sqlite3

from records.database import create_engine, database_url, migrate
from records.queries import get_call
from records.record import CallInfo, Turn
from records.writer import RecordWriter


async def writer_for(tmp_path, **kwargs) -> RecordWriter:
    engine = create_engine(database_url(None, tmp_path))
    await migrate(engine)
    writer = RecordWriter(engine, **kwargs)
    writer.start()
    return writer


async def settled(writer: RecordWriter) -> None:
    for _ in range(200):
        if not writer.pending:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{writer.pending} changes still waiting")


async def test_the_latest_state_of_each_row_is_written(tmp_path):
    writer = await writer_for(tmp_path)
    info = CallInfo("CA1", "inbound", "+1555", "+1666", "default")
    turn = Turn(1, "bot", "Hello.", 50, heard="Hello.")
    writer.write("CA1", info)
    writer.write("CA1", turn)
    turn.text, turn.heard, turn.interrupted = "Hello there.", "Hello", True
    writer.write("CA1", turn)  # merged with the one waiting
    await settled(writer)
    record = await get_call(writer.engine, "CA1")
    await writer.close()
    assert record["from"] == "+1555" and record["ended_at"] is None
    assert [(t["text"], t["heard"], t["interrupted"]) for t in record["turns"]] == [
        ("Hello there.", "Hello", True)
    ]


async def test_while_the_database_is_locked_changes_wait_then_are_written(tmp_path, log_lines):
    writer = await writer_for(tmp_path)
    lock = sqlite3.connect(tmp_path / "calls.db", isolation_level=None, check_same_thread=False)
    await asyncio.to_thread(lock.execute, "BEGIN EXCLUSIVE")
    writer.write("CA2", CallInfo("CA2", "inbound", "+1", "+2", "default"))
    for seq in range(1, 4):
        writer.write("CA2", Turn(seq, "caller", f"turn {seq}", seq * 1000))
    for _ in range(300):  # until the first write has failed (SQLite's busy timeout: 5 s)
        if writer.down_since is not None:
            break
        await asyncio.sleep(0.05)
    assert writer.pending == 4 and writer.down_since is not None
    await asyncio.to_thread(lock.execute, "COMMIT")
    lock.close()
    await settled(writer)
    record = await get_call(writer.engine, "CA2")
    await writer.close()
    assert [t["text"] for t in record["turns"]] == ["turn 1", "turn 2", "turn 3"]
    assert len([m for m in log_lines if "database is unavailable" in m]) == 1
    assert writer.dropped == 0


async def test_past_the_bound_turns_are_dropped_and_counted_but_calls_kept(tmp_path, log_lines):
    writer = RecordWriter(create_engine(database_url(None, tmp_path)), max_pending=2)
    # Not started: nothing drains, as with the database down.
    writer.write("CA3", CallInfo("CA3", "inbound", "+1", "+2", "default"))
    writer.write("CA3", Turn(1, "caller", "one", 0))
    writer.write("CA3", Turn(2, "bot", "two", 10))
    writer.write("CA4", CallInfo("CA4", "inbound", "+1", "+2", "default"))
    assert (writer.pending, writer.dropped) == (3, 1)
    assert any("1 dropped so far" in m for m in log_lines)
    await writer.engine.dispose()
