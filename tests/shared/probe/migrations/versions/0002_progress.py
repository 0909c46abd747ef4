"""The read horizon's table, for probes that record progress.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from escalator.shared.migrations import create_progress_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_progress_table()


def downgrade() -> None:
    op.drop_table("consumer_progress")
