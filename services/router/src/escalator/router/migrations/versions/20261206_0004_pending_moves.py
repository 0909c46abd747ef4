"""Moves triggered before their ticket was routed, kept until it is.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from escalator.shared.db import AutoId, UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_moves",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("trigger", sa.String(30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("executive", sa.Boolean(), nullable=False),
        sa.Column("sponsor_email", sa.String(320), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pending_moves"),
    )
    op.create_index("ix_pending_moves_ticket_id", "pending_moves", ["ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_pending_moves_ticket_id", table_name="pending_moves")
    op.drop_table("pending_moves")
