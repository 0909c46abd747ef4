"""Probe tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from escalator.shared.migrations import create_bus_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_bus_tables()
    op.create_table(
        "effects",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("ticket_id", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("effects")
