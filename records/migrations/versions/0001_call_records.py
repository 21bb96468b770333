"""Call records: calls, their turns and their events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the three tables."""
    op.create_table(
        "calls",
        sa.Column("call_sid", sa.String(64), primary_key=True),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("from_number", sa.String(64), nullable=False),
        sa.Column("to_number", sa.String(64), nullable=False),
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("end_reason", sa.String(64)),
        sa.Column("usage", sa.JSON, nullable=False),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_table(
        "turns",
        sa.Column("call_sid", sa.String(64), sa.ForeignKey("calls.call_sid"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("heard", sa.Text),
        sa.Column("interrupted", sa.Boolean, nullable=False),
        sa.Column("dtmf", sa.String(64)),
        sa.Column("at_ms", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Integer),
        sa.Column("stages", sa.JSON),
    )
    op.create_table(
        "call_events",
        sa.Column("call_sid", sa.String(64), sa.ForeignKey("calls.call_sid"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("at_ms", sa.Integer, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("call_events")
    op.drop_table("turns")
    op.drop_index("ix_calls_started_at", "calls")
    op.drop_table("calls")
