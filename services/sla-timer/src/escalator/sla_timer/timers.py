"""The timer loop: fires due clocks on time, once, across restarts and replicas.

Event-driven, not a polling cron: the loop sleeps until the earliest pending fire time,
and a handler that stores an earlier one wakes it after its commit. It still looks at
the table at least every ``timer_max_idle_seconds``, because another replica may have
started a clock this process was not told about.

Firing claims due rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas split
a burst between them and never both hold one clock; SQLite takes its write lock at
BEGIN, which serialises the claim the same way. Marking a clock fired and queueing its
event in the outbox commit together: a crash before the commit leaves the clock due (it
fires after restart), a crash after it leaves the event to the outbox relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalator.shared.consumer import is_infrastructure_error
from escalator.shared.events import utcnow
from escalator.shared.logs import log_context
from escalator.sla_timer import metrics, service
from escalator.sla_timer.models import Clock, ClockStatus
from escalator.sla_timer.settings import SlaTimerSettings

log = logging.getLogger(__name__)


class TimerLoop:
    def __init__(
        self, settings: SlaTimerSettings, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._wake = asyncio.Event()
        #: When the loop next means to look; ``schedule`` wakes it only for earlier times.
        self._sleeping_until: datetime | None = None

    def schedule(self, fire_at: datetime | None) -> None:
        """A clock now fires at ``fire_at`` (call after the commit that stored it)."""
        if fire_at is None:
            return
        if self._sleeping_until is None or fire_at < self._sleeping_until:
            self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        next_watch = 0.0
        while True:
            try:
                self._wake.clear()
                fired = await self.fire_due()
                if time.monotonic() >= next_watch:
                    # Also during a long burst, which is when falling behind shows.
                    await self._watch()
                    next_watch = time.monotonic() + self._settings.watch_interval_seconds
                if fired >= self._settings.timer_batch_size:
                    continue  # a burst: take the next batch at once
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

    async def fire_due(self) -> int:
        """Fire one batch of due clocks in one transaction; returns how many were due."""
        async with self._sessionmaker() as session, session.begin():
            now = utcnow()
            query = (
                select(Clock)
                .where(Clock.status == ClockStatus.running, Clock.fire_at <= now)
                .order_by(Clock.fire_at)
                .limit(self._settings.timer_batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                # Lock before deciding so two replicas cannot both fire this timer.
                query = query.with_for_update(skip_locked=True)
            clocks = list((await session.scalars(query)).all())
            for clock in clocks:
                with log_context(ticket_id=clock.ticket_id):
                    service.fire(session, clock, now=utcnow(),
                                 grace=self._settings.breach_grace_seconds)
        return len(clocks)

    async def _next_delay(self) -> float:
        """Seconds until the earliest pending fire time, capped by the idle limit."""
        async with self._sessionmaker() as session, session.begin():
            earliest = await session.scalar(
                select(func.min(Clock.fire_at)).where(Clock.status == ClockStatus.running)
            )
        idle = self._settings.timer_max_idle_seconds
        if earliest is None:
            return idle
        return min(max((earliest - utcnow()).total_seconds(), 0.0), idle)

    async def _watch(self) -> None:
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
