"""How far the consumer has read, so the dispatcher waits for an unread backlog; the
ticket's status in the projection and each delivery's event time, so messages made moot
by a resolution are cancelled; deliveries found by recipient.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from escalator.shared.db import UTCDateTime
from escalator.shared.migrations import create_progress_table

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_progress_table()
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("status", sa.String(20), nullable=True))
        batch.add_column(sa.Column("status_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("about_event_time", UTCDateTime(), nullable=True))
    op.create_index("ix_deliveries_recipient", "deliveries", [sa.text("lower(recipient)")])


def downgrade() -> None:
    op.drop_index("ix_deliveries_recipient", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("about_event_time")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("status_at")
        batch.drop_column("status")
    op.drop_table("consumer_progress")
