"""Keeps the outbox and inbox tables from growing without bound.

Sent outbox rows are only history once published, so they go after
``ESCALATOR_OUTBOX_RETENTION_HOURS``. Inbox rows must outlive any redelivery of their
event, so keep them longer than the topics' retention (``ESCALATOR_INBOX_RETENTION_HOURS``,
two weeks by default against Kafka's one-week default). Deletes run in small batches so
they never hold long locks on a busy table.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import Table, delete, select
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
        key = next(iter(table.primary_key.columns))
        total = 0
        while True:
            async with sessionmaker() as session, session.begin():
                ids = select(key).where(expired).limit(BATCH)  # type: ignore[arg-type]
                result = await session.execute(delete(table).where(key.in_(ids)))
            count = int(getattr(result, "rowcount", 0) or 0)
            total += count
            if count < BATCH:
                break
        removed[table.name] = total
    return removed


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
