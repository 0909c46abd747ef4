"""The read horizon: up to what moment every partition a service consumes has been applied.

A service that acts on time from its own tables alone acts on an outdated picture when
its consumer is behind: events that happened before "now" still wait in Kafka. The
sla-timer would breach a ticket whose acknowledgement, made in time, is still unread
(a breach storm after a restart), and the notifier would tell people about a ticket
that was resolved meanwhile. Kafka already knows how far we are; this module writes it
down where those services look: per partition, ``read_through`` is a moment such that
every message appended to the partition before it has been applied and committed.

- Caught up (the position reached the high watermark of the last fetch): the moment
  that fetch was answered.
- Behind: the timestamp of the last applied message (producers stamp messages when
  they send them, so what was appended earlier carries earlier stamps).

The horizon is the earliest ``read_through`` over every partition of the topics a
service consumes, or ``None`` when no consumer ever recorded one (nothing consumed,
nothing to wait for). A partition assigned but not yet read holds the horizon back
(``datetime.min``): until it is read, nothing is known about it.

Rows are written after the batch's own commit, so a crash in between only leaves an
older, more cautious horizon. The runner writes them every ``PROGRESS_INTERVAL``
seconds, busy or idle: such a consumer ends an idle fetch round after at most that
long (sooner with a shorter fetch wait), so in steady state the horizon trails the
present by about that much. (It also wrote on every idle round: with the default 50 ms
fetch wait that was twice as many writes, 0.07 of a core idle in each of the
sla-timer and the notifier against 0.045.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.db import conflict_insert, consumer_progress
from escalator.shared.events import utcnow

#: Seconds between two progress writes of one consumer, idle or busy.
PROGRESS_INTERVAL = 0.1

#: A horizon this close to the present is the present: the consumer is caught up and
#: polling (it reports every ``PROGRESS_INTERVAL``), so holding back for the last
#: moments would only make every timer that much late.
CAUGHT_UP_LAG = 2 * PROGRESS_INTERVAL

#: A horizon that holds everything back: a partition is assigned but not read yet.
NOT_READ = datetime.min.replace(tzinfo=UTC)

Partition = tuple[str, int]


async def record(session: AsyncSession, read: Mapping[Partition, datetime | None]) -> None:
    """Store how far each partition has been read; never moves a partition backwards.

    ``None`` registers a partition that is assigned but not read yet: it holds the
    horizon until a real moment replaces it, and never overwrites one.
    """
    if not read:
        return
    dialect = session.get_bind().dialect.name
    now = utcnow()
    rows = [{"topic": topic, "partition": partition, "read_through": moment, "updated_at": now}
            for (topic, partition), moment in sorted(read.items())]
    statement = conflict_insert(dialect)(consumer_progress).values(rows)
    excluded = statement.excluded
    column = consumer_progress.c.read_through
    await session.execute(statement.on_conflict_do_update(
        index_elements=[consumer_progress.c.topic, consumer_progress.c.partition],
        set_={
            # max(stored, new), where either may be NULL (not read yet).
            "read_through": func.coalesce(
                func.max(column, excluded.read_through)
                if dialect == "sqlite" else func.greatest(column, excluded.read_through),
                column, excluded.read_through),
            "updated_at": excluded.updated_at,
        },
    ))


async def horizon(session: AsyncSession, topics: Iterable[str]) -> datetime | None:
    """The earliest moment up to which every partition of ``topics`` has been read."""
    rows = (await session.execute(
        select(consumer_progress.c.read_through)
        .where(consumer_progress.c.topic.in_(list(topics)))
    )).scalars().all()
    if not rows:
        return None
    return min(NOT_READ if moment is None else moment for moment in rows)


def from_millis(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


__all__ = ["CAUGHT_UP_LAG", "NOT_READ", "PROGRESS_INTERVAL", "from_millis", "horizon", "record"]
