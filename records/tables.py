"""The call records' tables (SQLAlchemy Core; Alembic's migrations create them)."""

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

calls = Table(
    "calls",
    metadata,
    Column("call_sid", String(64), primary_key=True),
    Column("direction", String(16), nullable=False),
    Column("from_number", String(64), nullable=False),
    Column("to_number", String(64), nullable=False),
    Column("pipeline", String(128), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("end_reason", String(64)),
    Column("usage", JSON, nullable=False),
    Index("ix_calls_started_at", "started_at"),
)

turns = Table(
    "turns",
    metadata,
    Column("call_sid", String(64), ForeignKey("calls.call_sid"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("speaker", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("heard", Text),
    Column("interrupted", Boolean, nullable=False),
    Column("dtmf", String(64)),
    Column("at_ms", Integer, nullable=False),
    Column("latency_ms", Integer),
    Column("stages", JSON),
)

call_events = Table(
    "call_events",
    metadata,
    Column("call_sid", String(64), ForeignKey("calls.call_sid"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(128), nullable=False),
    Column("at_ms", Integer, nullable=False),
    Column("detail", JSON, nullable=False),
)

KEYS = {"calls": ("call_sid",), "turns": ("call_sid", "seq"), "call_events": ("call_sid", "seq")}
TABLES = {table.name: table for table in (calls, turns, call_events)}

# What every instance of the server shares through PostgreSQL (server/shared_database.py):
# the admitted calls' leases, the stream tokens used, the answering-machine verdicts.
call_leases = Table(
    "call_leases",
    metadata,
    Column("lease_id", String(64), primary_key=True),
    Column("instance", String(255), nullable=False),  # host and server, as in `count_here`
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_call_leases_expires_at", "expires_at"),
)

stream_claims = Table(
    "stream_claims",
    metadata,
    Column("stream", String(128), primary_key=True),  # call SID [~ leg]
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_stream_claims_expires_at", "expires_at"),
)

answered_by = Table(
    "answered_by",
    metadata,
    Column("call_sid", String(64), primary_key=True),
    Column("verdict", String(32), nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=False),
)
