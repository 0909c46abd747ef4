"""A roster version replicas compare per decision; explanations stored compactly.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

history = sa.table("assignment_history", sa.column("id", sa.Integer()),
                   sa.column("candidates", sa.JSON()))


def upgrade() -> None:
    version = op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_config_version"),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])
    _convert(_compact)


def downgrade() -> None:
    _convert(_expanded)
    op.drop_table("config_version")


def _convert(change: Any) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(history.c.id, history.c.candidates)
                        .where(history.c.candidates.is_not(None))).all()
    for row_id, stored in rows:
        bind.execute(history.update().where(history.c.id == row_id)
                     .values(candidates=change(stored)))


def _compact(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    reasons = list(dict.fromkeys(c["reason"] for c in candidates))
    picked = next((c["agent_id"] for c in candidates if c["picked"]), None)
    return {"picked": picked, "reasons": reasons,
            "agents": [[c["agent_id"], c["name"], c["open_tickets"], reasons.index(c["reason"])]
                       for c in candidates]}


def _expanded(compact: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"agent_id": a, "name": n, "open_tickets": o, "picked": a == compact["picked"],
             "reason": compact["reasons"][r]} for a, n, o, r in compact["agents"]]
