"""Rules, edited templates, the ticket projection, webhook payload formats.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from escalator.shared.db import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_targets") as batch:
        batch.add_column(sa.Column("format", sa.String(10), nullable=False,
                                   server_default="json"))
    op.create_table(
        "rules",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rules"),
    )
    op.create_table(
        "templates",
        sa.Column("event", sa.String(60), nullable=False),
        sa.Column("audience", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("language", sa.String(20), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event", "audience", "channel", "language",
                                name="pk_templates"),
    )
    op.create_table(
        "tickets",
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(500), nullable=True),
        sa.Column("customer", sa.JSON(), nullable=True),
        sa.Column("language", sa.String(20), nullable=True),
        sa.Column("severity", sa.String(20), nullable=True),
        sa.Column("executive", sa.Boolean(), nullable=False),
        sa.Column("parent_id", sa.String(200), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("assignee", sa.JSON(), nullable=True),
        sa.Column("supervisor", sa.JSON(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name="pk_tickets"),
    )
    op.create_index("ix_tickets_parent_id", "tickets", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_parent_id", table_name="tickets")
    op.drop_table("tickets")
    op.drop_table("templates")
    op.drop_table("rules")
    with op.batch_alter_table("webhook_targets") as batch:
        batch.drop_column("format")
