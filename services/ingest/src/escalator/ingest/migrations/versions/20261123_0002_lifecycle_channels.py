"""Lifecycle state, conversation threads, comments, customer directory, idempotency.

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
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("state", sa.String(30), nullable=False,
                                   server_default="new"))
        batch.add_column(sa.Column("language", sa.String(20), nullable=False,
                                   server_default="en"))
        batch.add_column(sa.Column("executive", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("severity_reason", sa.String(200), nullable=True))
        batch.add_column(sa.Column("department", sa.String(100), nullable=True))
        batch.add_column(sa.Column("parent_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("assignee_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("customer_account_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("customer_data", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("details", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reopen_count", sa.Integer(), nullable=False,
                                   server_default="0"))
    # Tickets from revision 0001 keep their meaning: open ones are "new".
    op.execute("UPDATE tickets SET state = status WHERE status <> 'open'")
    op.create_index("ix_tickets_state", "tickets", ["state"])
    op.create_index("ix_tickets_parent_id", "tickets", ["parent_id"])
    op.create_index("ix_tickets_assignee_id", "tickets", ["assignee_id"])
    op.create_index("ix_tickets_customer_account_id", "tickets", ["customer_account_id"])
    op.create_table(
        "ticket_threads",
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_ticket_threads_ticket_id_tickets"),
        sa.PrimaryKeyConstraint("channel", "key", name="pk_ticket_threads"),
    )
    op.create_index("ix_ticket_threads_ticket_id", "ticket_threads", ["ticket_id"])
    op.create_table(
        "ticket_comments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("author_type", sa.String(20), nullable=False),
        sa.Column("author", sa.String(320), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"],
                                name="fk_ticket_comments_ticket_id_tickets"),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_comments"),
    )
    op.create_index("ix_ticket_comments_ticket_id_created_at", "ticket_comments",
                    ["ticket_id", "created_at"])
    op.create_table(
        "customers",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("tier", sa.String(50), nullable=False),
        sa.Column("language", sa.String(20), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
    )
    op.create_table(
        "customer_identities",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("customer_id", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE",
                                name="fk_customer_identities_customer_id_customers"),
        sa.PrimaryKeyConstraint("key", name="pk_customer_identities"),
    )
    op.create_index("ix_customer_identities_customer_id", "customer_identities",
                    ["customer_id"])
    op.create_table(
        "idempotent_requests",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_idempotent_requests"),
    )


def downgrade() -> None:
    op.drop_table("idempotent_requests")
    op.drop_table("customer_identities")
    op.drop_table("customers")
    op.drop_table("ticket_comments")
    op.drop_table("ticket_threads")
    for name in ("customer_account_id", "assignee_id", "parent_id", "state"):
        op.drop_index(f"ix_tickets_{name}", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for name in ("reopen_count", "details", "customer_data", "customer_account_id",
                     "assignee_id", "parent_id", "department", "severity_reason",
                     "executive", "language", "state"):
            batch.drop_column(name)
