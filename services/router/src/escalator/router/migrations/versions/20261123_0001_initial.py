"""Teams, agents, escalation paths, assignments and their history; outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from escalator.shared.db import AutoId, UTCDateTime
from escalator.shared.migrations import create_bus_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_bus_tables()
    op.create_table(
        "teams",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("department", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_teams"),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("team_id", sa.String(100), nullable=False),
        sa.Column("role", sa.String(50), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("max_open_tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name="fk_agents_team_id_teams"),
    )
    op.create_index("ix_agents_team_id", "agents", ["team_id"])
    op.create_table(
        "escalation_paths",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("levels", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_escalation_paths"),
    )
    op.create_table(
        "assignments",
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("path_id", sa.String(100), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(100), nullable=True),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name="pk_assignments"),
        sa.ForeignKeyConstraint(["path_id"], ["escalation_paths.id"],
                                name="fk_assignments_path_id_escalation_paths"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"],
                                name="fk_assignments_agent_id_agents"),
    )
    op.create_index("ix_assignments_agent_id_status", "assignments", ["agent_id", "status"])
    op.create_table(
        "assignment_history",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("level_name", sa.String(200), nullable=False),
        sa.Column("agent_id", sa.String(100), nullable=True),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("trigger", sa.String(30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assignment_history"),
    )
    op.create_index("ix_assignment_history_ticket_id", "assignment_history", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("assignment_history")
    op.drop_table("assignments")
    op.drop_table("escalation_paths")
    op.drop_table("agents")
    op.drop_table("teams")
    op.drop_table("inbox")
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    op.drop_table("outbox")
