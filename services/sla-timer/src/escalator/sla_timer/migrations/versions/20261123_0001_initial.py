"""SLA policies, clocks, outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
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
        "sla_policies",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("match_severity", sa.String(10), nullable=True),
        sa.Column("match_category", sa.String(100), nullable=True),
        sa.Column("match_channel", sa.String(20), nullable=True),
        sa.Column("match_tier", sa.String(50), nullable=True),
        sa.Column("first_response_seconds", sa.Float(), nullable=False),
        sa.Column("warning_at", sa.Float(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sla_policies"),
    )
    op.create_index("ix_sla_policies_position", "sla_policies", ["position"])
    op.create_table(
        "clocks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("policy_id", sa.String(100), nullable=False),
        sa.Column("target_seconds", sa.Float(), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("warn_at", UTCDateTime(), nullable=True),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("fire_at", UTCDateTime(), nullable=True),
        sa.Column("next_timer", sa.String(20), nullable=True),
        sa.Column("warned_at", UTCDateTime(), nullable=True),
        sa.Column("met_at", UTCDateTime(), nullable=True),
        sa.Column("breached_at", UTCDateTime(), nullable=True),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.Column("met_after_breach", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_clocks"),
        sa.UniqueConstraint("ticket_id", "name", name="uq_clocks_ticket_id_name"),
    )
    op.create_index(
        "ix_clocks_fire_at_running", "clocks", ["fire_at"],
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("ix_clocks_fire_at_running", table_name="clocks")
    op.drop_table("clocks")
    op.drop_index("ix_sla_policies_position", table_name="sla_policies")
    op.drop_table("sla_policies")
    op.drop_table("inbox")
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    op.drop_table("outbox")
