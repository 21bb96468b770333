"""What the server's instances share: call leases, used stream tokens, machine verdicts.

Used on PostgreSQL only (SQLite keeps them in files on one machine); made everywhere so the
schema is the same.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the three tables."""
    op.create_table(
        "call_leases",
        sa.Column("lease_id", sa.String(64), primary_key=True),
        sa.Column("instance", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_call_leases_expires_at", "call_leases", ["expires_at"])
    op.create_table(
        "stream_claims",
        sa.Column("stream", sa.String(128), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_stream_claims_expires_at", "stream_claims", ["expires_at"])
    op.create_table(
        "answered_by",
        sa.Column("call_sid", sa.String(64), primary_key=True),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("answered_by")
    op.drop_index("ix_stream_claims_expires_at", "stream_claims")
    op.drop_table("stream_claims")
    op.drop_index("ix_call_leases_expires_at", "call_leases")
    op.drop_table("call_leases")
