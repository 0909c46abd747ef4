"""Keeps the outbox and inbox tables from growing without bound.

Sent outbox rows are only history once published, so they go after
``ESCALATOR_OUTBOX_RETENTION_HOURS``. Inbox rows must outlive any redelivery of their
event, so keep them longer than the topics' retention (``ESCALATOR_INBOX_RETENTION_HOURS``,
two weeks by default against Kafka's one-week default). Deletes run in small batches so
they never hold long locks on a busy table.

On PostgreSQL each batch names its rows by physical address (``ctid``): ``DELETE ...
WHERE key IN (SELECT key ... LIMIT n)`` was planned as a hash semi-join that read the
whole table for every batch (274 ms a batch at a million inbox rows, so a backlog cost
about the square of its size); by address each batch is a TID scan of its own rows
(9-10 ms; half a million expired rows of a million: 0.71 s, against 4.1 s by key).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, any_, delete, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalator.shared.consumer import is_infrastructure_error
from escalator.shared.db import inbox, outbox
from escalator.shared.events import utcnow
from escalator.shared.settings import ServiceSettings

log = logging.getLogger(__name__)

BATCH = 5_000


async def prune_once(
    settings: ServiceSettings, sessionmaker: async_sessionmaker[AsyncSession]
) -> dict[str, int]:
    """Delete expired rows; returns how many went from each table."""
    now = utcnow()
    plan: list[tuple[Table, object]] = [
        (outbox, outbox.c.sent_at < now - timedelta(hours=settings.outbox_retention_hours)),
        (inbox, inbox.c.processed_at < now - timedelta(hours=settings.inbox_retention_hours)),
    ]
    removed: dict[str, int] = {}
    for table, expired in plan:
        total = 0
        while True:
            async with sessionmaker() as session, session.begin():
                dialect = session.get_bind().dialect.name
                result = await session.execute(batch_delete(table, expired, dialect))
            count = int(getattr(result, "rowcount", 0) or 0)
            total += count
            if count < BATCH:
                break
        removed[table.name] = total
    return removed


def batch_delete(table: Table, expired: Any, dialect: str) -> Any:
    """Delete up to ``BATCH`` rows meeting ``expired``: by address on PostgreSQL, by
    primary key elsewhere (SQLite looks an ``IN`` subquery's keys up in the key's index)."""
    if dialect == "postgresql":
        ctid: ColumnElement[Any] = literal_column("ctid")
        doomed = select(ctid).select_from(table).where(expired).limit(BATCH)
        return delete(table).where(ctid == any_(func.array(doomed.scalar_subquery())))
    key = next(iter(table.primary_key.columns))
    return delete(table).where(key.in_(select(key).where(expired).limit(BATCH)))


async def prune_forever(
    settings: ServiceSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    interval: float = 3600.0,
) -> None:
    while True:
        try:
            removed = await prune_once(settings, sessionmaker)
            if any(removed.values()):
                log.info("pruned expired bus rows", extra={"removed": removed})
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            log.warning("pruning skipped: database unavailable (%s)", exc)
        await asyncio.sleep(interval)
