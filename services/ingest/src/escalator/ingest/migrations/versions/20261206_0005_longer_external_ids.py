"""Conversation ids up to 300 characters: a PagerDuty dedup key may be 255 characters and
is stored as ``pagerduty:<key>``, a social thread id 200 after its platform, and a
conversation that starts anew after its ticket closed gets a 9-character suffix; at
200 each of these was a 500 from PostgreSQL ("value too long") for a valid event.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite does not enforce a VARCHAR length; on PostgreSQL widening one rewrites nothing.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("tickets", "external_id", type_=sa.String(300),
                        existing_type=sa.String(200), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("tickets", "external_id", type_=sa.String(200),
                        existing_type=sa.String(300), existing_nullable=False)
