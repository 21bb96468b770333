"""Reading call records back, as the API's JSON (the field names are the contract)."""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from records.record import CallInfo, Event, Turn
from records.tables import call_events, calls, turns

MAX_PAGE = 200


@dataclass(frozen=True)
class CallFilter:
    """Which calls to list: started in [since, until), from or to `number`, and so on."""

    since: datetime | None = None
    until: datetime | None = None
    number: str | None = None
    pipeline: str | None = None
    end_reason: str | None = None
    in_progress: bool | None = None


async def list_calls(
    engine: AsyncEngine, where: CallFilter, *, limit: int = 50, offset: int = 0
) -> list[dict]:
    """Calls matching `where`, newest first, without their turns."""
    query = select(calls).order_by(calls.c.started_at.desc(), calls.c.call_sid)
    if where.since:
        query = query.where(calls.c.started_at >= where.since)
    if where.until:
        query = query.where(calls.c.started_at < where.until)
    if where.number:
        query = query.where(
            or_(calls.c.from_number == where.number, calls.c.to_number == where.number)
        )
    if where.pipeline:
        query = query.where(calls.c.pipeline == where.pipeline)
    if where.end_reason:
        query = query.where(calls.c.end_reason == where.end_reason)
    if where.in_progress is not None:
        ended = calls.c.ended_at.is_(None)
        query = query.where(ended if where.in_progress else ~ended)
    query = query.limit(min(limit, MAX_PAGE)).offset(offset)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    return [call_json(row) for row in rows]


async def get_call(engine: AsyncEngine, call_sid: str) -> dict | None:
    """One call with its turns and events in order, or None."""
    async with engine.connect() as connection:
        call = (
            (await connection.execute(select(calls).where(calls.c.call_sid == call_sid)))
            .mappings()
            .first()
        )
        if call is None:
            return None
        turn_rows = await connection.execute(
            select(turns).where(turns.c.call_sid == call_sid).order_by(turns.c.seq)
        )
        events = call_events.c
        event_rows = await connection.execute(
            select(call_events).where(events.call_sid == call_sid).order_by(events.seq)
        )
        return call_json(
            call,
            turns=[turn_json(t) for t in turn_rows.mappings()],
            events=[event_json(e) for e in event_rows.mappings()],
        )


def record_json(info: CallInfo, turns: list[Turn], events: list[Event]) -> dict:
    """A call's record held in memory, as `get_call` returns it from the database."""
    return call_json(
        info.row(),
        turns=[turn_json(t.row()) for t in sorted(turns, key=lambda t: t.seq)],
        events=[event_json(e.row()) for e in events],
    )


def call_json(row, *, turns: list[dict] | None = None, events: list[dict] | None = None) -> dict:
    """A `calls` row as the API shows it (with `turns` and `events` when given)."""
    call = {
        "call_sid": row["call_sid"],
        "direction": row["direction"],
        "from": row["from_number"],
        "to": row["to_number"],
        "pipeline": row["pipeline"],
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "end_reason": row["end_reason"],
        "usage": row["usage"],
    }
    if turns is not None:
        call["turns"] = turns
    if events is not None:
        call["events"] = events
    return call


def turn_json(row) -> dict:
    """A `turns` row as the API shows it."""
    bot = row["speaker"] == "bot"
    return {
        "seq": row["seq"],
        "speaker": row["speaker"],
        "text": row["text"],
        "heard": row["heard"] if bot else None,
        "interrupted": row["interrupted"],
        "dtmf": row["dtmf"],
        "at_ms": row["at_ms"],
        "latency_ms": row["latency_ms"],
        "stages": row["stages"],
    }


def event_json(row) -> dict:
    """A `call_events` row as the API shows it."""
    return {k: row[k] for k in ("seq", "kind", "name", "at_ms", "detail")}


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC (`…Z`); SQLite hands times back without their zone, which is UTC."""
    if moment is None:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
