"""Timeline events, post-mortems, outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from escalator.shared.db import UTCDateTime
from escalator.shared.migrations import create_bus_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_bus_tables()
    op.create_table(
        "timeline_events",
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_timeline_events"),
    )
    op.create_index("ix_timeline_events_ticket_id_time", "timeline_events",
                    ["ticket_id", "time"])
    op.create_table(
        "postmortems",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("customer_name", sa.String(200), nullable=False),
        sa.Column("customer_email", sa.String(320), nullable=False),
        sa.Column("customer_tier", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_postmortems"),
        sa.UniqueConstraint("ticket_id", name="uq_postmortems_ticket_id"),
    )
    op.create_index("ix_postmortems_created_at_id", "postmortems", ["created_at", "id"])
    op.create_index("ix_postmortems_status", "postmortems", ["status"])


def downgrade() -> None:
    op.drop_table("postmortems")
    op.drop_table("timeline_events")
    op.drop_table("inbox")
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    op.drop_table("outbox")
