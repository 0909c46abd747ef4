"""Business calendars; policy targets for next update and resolution; clock cycles,
pauses, levels and calendars.

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
    op.create_table(
        "sla_calendars",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sla_calendars"),
    )
    with op.batch_alter_table("sla_policies") as batch:
        batch.add_column(sa.Column("warning_before_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("next_update_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("resolution_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("calendar_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("on_level_change", sa.String(10), nullable=False,
                                   server_default="keep"))
    with op.batch_alter_table("clocks") as batch:
        batch.add_column(sa.Column("cycle", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("calendar_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("level", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("elapsed_seconds", sa.Float(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("resumed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("paused_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("warn_after_seconds", sa.Float(), nullable=True))
        batch.drop_constraint("uq_clocks_ticket_id_name", type_="unique")
        batch.create_unique_constraint("uq_clocks_ticket_id_name_cycle",
                                       ["ticket_id", "name", "cycle"])
    # Clocks started before this revision ran from their start without pauses.
    op.execute("UPDATE clocks SET resumed_at = started_at")


def downgrade() -> None:
    with op.batch_alter_table("clocks") as batch:
        batch.drop_constraint("uq_clocks_ticket_id_name_cycle", type_="unique")
        batch.create_unique_constraint("uq_clocks_ticket_id_name", ["ticket_id", "name"])
        for column in ("warn_after_seconds", "paused_at", "resumed_at", "elapsed_seconds",
                       "level", "calendar_id", "cycle"):
            batch.drop_column(column)
    with op.batch_alter_table("sla_policies") as batch:
        for column in ("on_level_change", "calendar_id", "resolution_seconds",
                       "next_update_seconds", "warning_before_seconds"):
            batch.drop_column(column)
    op.drop_table("sla_calendars")
