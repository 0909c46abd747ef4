"""How far the consumer has read, so timers and senders wait for an unread backlog.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

from escalator.shared.migrations import create_progress_table

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_progress_table()


def downgrade() -> None:
    op.drop_table("consumer_progress")
