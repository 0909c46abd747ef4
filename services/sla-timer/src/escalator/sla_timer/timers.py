"""The timer loop: fires due clocks on time, once, across restarts and replicas.

Event-driven, not a polling cron: the loop sleeps until the earliest pending fire time
(read from the partial index of running clocks), and a handler that stores an earlier
one wakes it after its commit. It still looks at the table at least every
``timer_max_idle_seconds``, because another replica may have started a clock this
process was not told about. While a batch comes back full it loops at once: a burst is
worked off batch after batch with no sleep in between.

A batch costs a fixed number of statements, whatever its size: one claims the due rows
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas split a burst and never both hold
one clock; SQLite takes its write lock at BEGIN, which serialises the claim the same
way), one writes every fired clock back (executemany), and one inserts the batch's
outbox rows. The fired state and the outbox rows commit together: a crash before the
commit leaves the clocks due (they fire after restart, or on another replica, since a
dead connection's row locks go with it), a crash after it leaves the events to the relay.

Event time decides, also after downtime: a timer fires only once the consumer has read
every partition up to its deadline (the read horizon, ``escalator.shared.progress``).
After a restart with a backlog, the acknowledgements in it are read first, and only the
clocks that are still unmet then breach: no storm of breaches for tickets answered in
time. A consumer that is caught up reports a horizon within ``CAUGHT_UP_LAG`` of the
present, which counts as the present (messages still in flight are what the breach
grace is for), so in steady state the horizon delays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import operator
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalator.shared import progress
from escalator.shared.consumer import ConsumerRunner, is_infrastructure_error
from escalator.shared.db import among
from escalator.shared.events import CloudEvent, utcnow
from escalator.shared.metrics import observe_many
from escalator.shared.outbox import publish_many
from escalator.sla_timer import metrics, service
from escalator.sla_timer.models import Clock, ClockStatus
from escalator.sla_timer.settings import SlaTimerSettings

log = logging.getLogger(__name__)

#: Batches in flight at once during a burst on PostgreSQL (each holds a connection).
BURST_LANES = 3

_clocks = cast(Table, Clock.__table__)
_CLAIMED = [_clocks.c[field.name] for field in dataclasses.fields(service.DueClock)]
_fired = operator.attrgetter(*service.FIRED_COLUMNS)

def due_clocks(limit: int, *, now: datetime, lock: bool) -> Select[Any]:
    """The earliest ``limit`` due clocks, served by the partial index of running clocks'
    fire times. ``lock`` claims them (PostgreSQL): rows another replica holds are
    skipped, not waited for, so replicas split a burst and never both fire one clock."""
    query = (
        select(*_CLAIMED)
        .where(_clocks.c.status == ClockStatus.running, _clocks.c.fire_at <= now)
        .order_by(_clocks.c.fire_at)
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True) if lock else query


class TimerLoop:
    def __init__(
        self, settings: SlaTimerSettings, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        postgresql = sessionmaker.kw["bind"].dialect.name == "postgresql"
        self._lanes = BURST_LANES if postgresql else 1
        self._wake = asyncio.Event()
        #: When the loop next means to look; ``schedule`` wakes it only for earlier times.
        self._sleeping_until: datetime | None = None
        #: The topics whose read horizon holds timers back (none: nothing is consumed).
        self._topics: list[str] = []
        self._held = False

    def follow(self, runner: ConsumerRunner) -> None:
        """Hold timers to ``runner``'s read horizon, and look again when it moves."""
        self._topics = runner.topics
        runner.on_progress.append(self._progress)

    def _progress(self) -> None:
        if self._held:
            self._wake.set()

    def schedule(self, fire_at: datetime | None) -> None:
        """A clock now fires at ``fire_at`` (call after the commit that stored it)."""
        if fire_at is None:
            return
        if self._sleeping_until is None or fire_at < self._sleeping_until:
            self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                self._wake.clear()
                await self._fire_all_due()
                delay = await self._next_delay()
                backoff = 0.1
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                log.warning("timer loop cannot reach the database (%s); retrying in %.1fs",
                            exc, backoff)
                delay, backoff = backoff, min(backoff * 2, 5.0)
            self._sleeping_until = utcnow() + timedelta(seconds=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._sleeping_until = None

    async def _fire_all_due(self) -> None:
        """Fire batches until one comes back short, with no sleep between them.

        During a burst, PostgreSQL fires ``BURST_LANES`` batches at once: SKIP LOCKED
        keeps them apart, and the database works on one batch while this process builds
        the events of another. SQLite serialises writers, so it takes one at a time.
        """
        batch = self._settings.timer_batch_size
        fired = await self.fire_due()
        while fired >= batch:
            lanes = await asyncio.gather(*(self.fire_due() for _ in range(self._lanes)),
                                         return_exceptions=True)
            for lane in lanes:
                if isinstance(lane, BaseException):
                    raise lane  # once every lane has finished: none is left running
            fired = max(lane for lane in lanes if isinstance(lane, int))

    async def fire_due(self) -> int:
        """Fire one batch of due clocks in one transaction; returns how many were due."""
        grace = self._settings.breach_grace_seconds
        async with self._sessionmaker() as session, session.begin():
            postgresql = session.get_bind().dialect.name == "postgresql"
            up_to = await self._fire_until(session, utcnow())
            claim = due_clocks(self._settings.timer_batch_size, now=up_to, lock=postgresql)
            rows = (await session.execute(claim)).all()
            if not rows:
                return 0
            now = utcnow()
            changed: list[tuple[str, dict[str, Any]]] = []
            events: list[CloudEvent[Any]] = []
            for row in rows:
                clock = service.DueClock(*row)
                firing = service.fire(clock, now=now, grace=grace)
                changed.append((clock.id, {
                    name: after for name, before, after
                    in zip(service.FIRED_COLUMNS, _fired(row), _fired(clock), strict=True)
                    if after != before}))
                if firing is not None:
                    event_id, data = firing
                    events.append(CloudEvent.wrap(data, source=service.SOURCE, time=now,
                                                  event_id=event_id))
            await _write_back(session, changed)
            await publish_many(session, events)
        # Counted once committed: a batch that rolls back fires again, and counts then.
        observe_many(metrics.FIRE_LATENESS,
                     (max((now - row.fire_at).total_seconds(), 0.0) for row in rows))
        if events:
            service.count(event.data for event in events)
        return len(rows)

    async def _fire_until(self, session: AsyncSession, now: datetime) -> datetime:
        """Fire times up to this may fire: now, unless the read horizon is behind.

        A breach fires at its deadline plus the grace, so ``horizon + grace`` lets it fire
        once everything that happened before the deadline has been read.
        """
        read = await progress.horizon(session, self._topics) if self._topics else None
        lag = 0.0 if read is None else max((now - read).total_seconds(), 0.0)
        metrics.READ_HORIZON_LAG.set(min(lag, 10 * 365 * 86400.0))
        if read is None or lag <= progress.CAUGHT_UP_LAG:
            return now  # caught up: what is in flight is the breach grace's to cover
        return min(now, read + timedelta(seconds=self._settings.breach_grace_seconds))

    async def _next_delay(self) -> float:
        """Seconds until the earliest pending fire time, capped by the idle limit; the
        idle limit too when that time has come but the read horizon holds it back (a
        progress write wakes the loop)."""
        async with self._sessionmaker() as session, session.begin():
            earliest = await session.scalar(
                select(func.min(Clock.fire_at)).where(Clock.status == ClockStatus.running)
            )
            now = utcnow()
            up_to = await self._fire_until(session, now)
        idle = self._settings.timer_max_idle_seconds
        self._held = earliest is not None and up_to < earliest <= now
        if earliest is None or self._held:
            return idle
        return min(max((earliest - now).total_seconds(), 0.0), idle)

    async def watch(self) -> None:
        """Refresh the pending and overdue gauges, beside the loop rather than in it:
        counting a million pending clocks takes long enough to make timers late."""
        while True:
            started = time.monotonic()
            try:
                await self._count()
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                log.warning("timer watchdog cannot reach the database (%s)", exc)
            # Counting a million pending clocks takes a while: keep it under a tenth of
            # the time, whatever the interval.
            spent = time.monotonic() - started
            await asyncio.sleep(max(self._settings.watch_interval_seconds - spent, 9 * spent))

    async def _count(self) -> None:
        """Count pending timers, and those left far past due: a stuck or overloaded loop
        shows here."""
        threshold = self._settings.watchdog_overdue_seconds
        async with self._sessionmaker() as session, session.begin():
            overdue = await session.scalar(
                select(func.count()).select_from(Clock).where(
                    Clock.status == ClockStatus.running,
                    Clock.fire_at < utcnow() - timedelta(seconds=threshold),
                )
            ) or 0
            pending = await session.scalar(
                select(func.count()).select_from(Clock).where(
                    Clock.status == ClockStatus.running, Clock.fire_at.is_not(None))
            ) or 0
        metrics.OVERDUE_TIMERS.set(overdue)
        metrics.PENDING_TIMERS.set(pending)
        if overdue:
            log.warning("%d SLA timers are overdue by more than %.0fs", overdue, threshold)


async def _write_back(session: AsyncSession, changed: list[tuple[str, dict[str, Any]]]) -> None:
    """Store what firing changed on each clock, in as few statements as the changes allow:
    clocks changed alike (every breach of a batch: same columns, same values) in one
    ``UPDATE ... WHERE id IN``, the rest (a warning moves each clock's fire time to its
    own deadline) in one executemany per set of columns."""
    kinds: dict[tuple[str, ...], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for clock_id, values in changed:
        kinds[tuple(values)].append((clock_id, values))
    bump = {"version": _clocks.c.version + 1}
    for columns, clocks in kinds.items():
        first = clocks[0][1]
        if all(values == first for _, values in clocks):
            ids = [clock_id for clock_id, _ in clocks]
            await session.execute(update(_clocks).where(among(_clocks.c.id, "ids", session))
                                  .values({**first, **bump}), {"ids": ids})
            continue
        each = (update(_clocks).where(_clocks.c.id == bindparam("clock_id"))
                .values({**{name: bindparam(f"new_{name}") for name in columns}, **bump}))
        await session.execute(each, [
            {"clock_id": clock_id, **{f"new_{name}": value for name, value in values.items()}}
            for clock_id, values in clocks])
