"""Open tickets by severity, for the open-tickets gauge: closed tickets pile up for good,
and counting the open ones read the whole table every 15 seconds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("state NOT IN ('resolved', 'closed')")


def upgrade() -> None:
    op.create_index("ix_tickets_open_severity", "tickets", ["severity"],
                    postgresql_where=_OPEN, sqlite_where=_OPEN)


def downgrade() -> None:
    op.drop_index("ix_tickets_open_severity", table_name="tickets")
