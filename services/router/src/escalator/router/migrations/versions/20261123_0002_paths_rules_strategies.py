"""Skills, shifts and loads on agents; path rules; round-robin cursors; explanations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY = sa.text("'[]'")


def upgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("lead_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("skills", sa.JSON(), nullable=False, server_default=EMPTY))
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("skills", sa.JSON(), nullable=False, server_default=EMPTY))
        batch.add_column(sa.Column("languages", sa.JSON(), nullable=False,
                                   server_default=EMPTY))
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=False,
                                   server_default="UTC"))
        batch.add_column(sa.Column("shifts", sa.JSON(), nullable=False, server_default=EMPTY))
        batch.add_column(sa.Column("chat_handle", sa.String(200), nullable=True))
        batch.add_column(sa.Column("open_tickets", sa.Integer(), nullable=False,
                                   server_default="0"))
    # Loads were counted from assignments until now: carry them over.
    op.execute(
        "UPDATE agents SET open_tickets = (SELECT count(*) FROM assignments "
        "WHERE assignments.agent_id = agents.id AND assignments.status = 'open')"
    )
    with op.batch_alter_table("escalation_paths") as batch:
        batch.add_column(sa.Column("repeat", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("on_empty", sa.String(10), nullable=False,
                                   server_default="wait"))
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("rule", sa.String(100), nullable=True))
        batch.add_column(sa.Column("executive", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("language", sa.String(20), nullable=True))
        batch.add_column(sa.Column("category", sa.String(100), nullable=True))
        batch.add_column(sa.Column("sponsor_email", sa.String(320), nullable=True))
        batch.add_column(sa.Column("holders", sa.JSON(), nullable=False, server_default=EMPTY))
        batch.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("assignment_history") as batch:
        batch.add_column(sa.Column("strategy", sa.String(30), nullable=True))
        batch.add_column(sa.Column("rule", sa.String(100), nullable=True))
        batch.add_column(sa.Column("candidates", sa.JSON(), nullable=True))
    op.create_table(
        "path_rules",
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("path_id", sa.String(100), nullable=False),
        sa.Column("match", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_path_rules"),
        sa.UniqueConstraint("id", name="uq_path_rules_id"),
    )
    op.create_table(
        "round_robin",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("last_agent_id", sa.String(100), nullable=True),
        sa.Column("turns", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("key", name="pk_round_robin"),
    )


def downgrade() -> None:
    op.drop_table("round_robin")
    op.drop_table("path_rules")
    for table, columns in (
        ("assignment_history", ["candidates", "rule", "strategy"]),
        ("assignments", ["repeats", "holders", "sponsor_email", "category", "language",
                         "executive", "rule"]),
        ("escalation_paths", ["on_empty", "repeat"]),
        ("agents", ["open_tickets", "chat_handle", "shifts", "timezone", "languages",
                    "skills"]),
        ("teams", ["skills", "lead_id"]),
    ):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column)
