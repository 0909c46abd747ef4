"""Alembic, run programmatically so each service migrates itself before it serves.

Every service keeps its revisions in its own ``migrations/`` folder; the environment
script there is three lines that call ``run_env``. On PostgreSQL the service's schema is
created first and selected through ``search_path``, so revisions never name a schema and
the same files serve SQLite.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from escalator.shared.db import UTCDateTime, bus_metadata
from escalator.shared.settings import ServiceSettings

log = logging.getLogger(__name__)


def alembic_config(migrations_dir: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return cfg


async def wait_for_database(engine: AsyncEngine, *, timeout: float = 60.0) -> None:
    """Block until the database answers: services may start before it in Compose/K8s."""
    deadline = asyncio.get_running_loop().time() + timeout
    delay = 0.2
    while True:
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return
        except (OSError, sa.exc.DBAPIError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("database not reachable yet (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)


async def upgrade(
    engine: AsyncEngine, settings: ServiceSettings, migrations_dir: Path, target: str = "head"
) -> None:
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.db_schema}"'))
            if await conn.scalar(text("SHOW autovacuum")) == "off":
                log.warning(
                    "PostgreSQL runs with autovacuum off: the tables of schema %s will "
                    "never be analysed, so statements keep the plans made while they were "
                    "empty and lookups turn into scans of whole tables as they grow. Turn "
                    "autovacuum on, or run ANALYZE on the schema regularly",
                    settings.db_schema)
    cfg = alembic_config(migrations_dir)

    def _run(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, target)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


def run_env(target_metadata: MetaData, *extra: MetaData) -> None:
    """Body of every service's ``migrations/env.py``; ``extra`` names optional shared
    tables the service has (``progress_metadata``)."""
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `escalator-<service> migrate`")
    context.configure(
        connection=connection,
        target_metadata=[target_metadata, bus_metadata, *extra],
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def create_bus_tables() -> None:
    """The outbox and inbox, created by each service's first revision."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    op.create_index(
        "ix_outbox_unsent", "outbox", ["id"],
        postgresql_where=sa.text("sent_at IS NULL"), sqlite_where=sa.text("sent_at IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("processed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_inbox"),
    )


def create_progress_table() -> None:
    """``consumer_progress`` (``escalator.shared.progress``), for services acting on time."""
    op.create_table(
        "consumer_progress",
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("read_through", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition", name="pk_consumer_progress"),
    )
