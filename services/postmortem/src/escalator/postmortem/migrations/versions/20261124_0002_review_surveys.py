"""Escalation reasons, the review fields, action items, the change log and surveys.

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

_TEXT_COLUMNS = ("summary", "customer_impact", "root_cause_text", "went_well", "went_badly",
                 "concessions")


def upgrade() -> None:
    # Plain ADD COLUMNs (nullable or with a server default) work on SQLite without a
    # table rebuild, and rows created before this revision get sensible values.
    op.add_column("postmortems", sa.Column("executive", sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    op.add_column("postmortems", sa.Column("reasons", sa.Text(), nullable=False,
                                           server_default="[]"))
    for name in _TEXT_COLUMNS:
        op.add_column("postmortems", sa.Column(name, sa.Text(), nullable=True))
    op.add_column("postmortems", sa.Column("root_cause_category", sa.String(100), nullable=True))
    op.add_column("postmortems", sa.Column("improvements", sa.Text(), nullable=False,
                                           server_default="{}"))
    op.add_column("postmortems", sa.Column("no_action_items", sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    op.add_column("postmortems", sa.Column("reviewer", sa.String(200), nullable=True))
    op.add_column("postmortems", sa.Column("completed_at", UTCDateTime(), nullable=True))
    op.add_column("postmortems", sa.Column("updated_at", UTCDateTime(), nullable=True))
    op.create_index("ix_postmortems_closed_at", "postmortems", ["closed_at"])

    op.create_table(
        "action_items",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("postmortem_id", sa.String(36), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["postmortem_id"], ["postmortems.id"],
                                name="fk_action_items_postmortem_id_postmortems"),
        sa.PrimaryKeyConstraint("id", name="pk_action_items"),
        sa.UniqueConstraint("postmortem_id", "idempotency_key",
                            name="uq_action_items_postmortem_id_idempotency_key"),
    )
    op.create_index("ix_action_items_postmortem_id", "action_items", ["postmortem_id"])
    op.create_index("ix_action_items_status_due_date", "action_items", ["status", "due_date"])

    op.create_table(
        "postmortem_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("postmortem_id", sa.String(36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("field", sa.String(100), nullable=False),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["postmortem_id"], ["postmortems.id"],
                                name="fk_postmortem_changes_postmortem_id_postmortems"),
        sa.PrimaryKeyConstraint("id", name="pk_postmortem_changes"),
    )
    op.create_index("ix_postmortem_changes_postmortem_id_id", "postmortem_changes",
                    ["postmortem_id", "id"])

    op.create_table(
        "surveys",
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name="pk_surveys"),
    )
    op.create_index("ix_surveys_submitted_at", "surveys", ["submitted_at"])


def downgrade() -> None:
    op.drop_table("surveys")
    op.drop_table("postmortem_changes")
    op.drop_table("action_items")
    op.drop_index("ix_postmortems_closed_at", table_name="postmortems")
    for name in ("updated_at", "completed_at", "reviewer", "no_action_items", "improvements",
                 "root_cause_category", *_TEXT_COLUMNS, "reasons", "executive"):
        op.drop_column("postmortems", name)
