"""Clock operations. They never commit: the caller's transaction also carries the events.

Every transition takes the time it happened at (the event's time, or the timer loop's
"now"), never the time it is processed, so a late-processed event is judged by when it
happened. Each operation expects the clock rows locked by the caller (``clocks_of(...,
lock=True)`` or the timer loop's claim), so a handler and a timer never both decide.

Warnings and breaches go out with deterministic event ids (``<clock id>:breached``):
the outbox's unique event id makes a second breach of one clock impossible to commit,
and consumers deduplicate redeliveries by that id.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.db import on_commit
from escalator.shared.events import (
    CloudEvent,
    Severity,
    SlaBreached,
    SlaClockEvent,
    SlaWarning,
    TicketSnapshot,
)
from escalator.shared.outbox import publish
from escalator.sla_timer import metrics
from escalator.sla_timer.models import FIRST_RESPONSE, Clock, ClockStatus, SlaPolicy, Timer

SOURCE = "/escalator/sla-timer"


def start_clock(
    session: AsyncSession, policy: SlaPolicy, ticket: TicketSnapshot, *, at: datetime,
    grace: float,
) -> Clock:
    """A running first-response clock from ``at``, with the policy's targets copied in."""
    target = policy.first_response_seconds
    warn_at = at + timedelta(seconds=target * policy.warning_at) if policy.warning_at else None
    due_at = at + timedelta(seconds=target)
    clock = Clock(
        id=str(uuid.uuid4()),
        ticket_id=ticket.ticket_id,
        name=FIRST_RESPONSE,
        policy_id=policy.id,
        target_seconds=target,
        severity=ticket.severity.value,
        status=ClockStatus.running,
        started_at=at,
        warn_at=warn_at,
        due_at=due_at,
        met_after_breach=False,
        updated_at=at,
    )
    if warn_at is not None:
        clock.next_timer, clock.fire_at = Timer.warning, warn_at
    else:
        _next_is_breach(clock, grace)
    session.add(clock)
    return clock


async def clocks_of(session: AsyncSession, ticket_id: str, *, lock: bool = False) -> list[Clock]:
    query = select(Clock).where(Clock.ticket_id == ticket_id).order_by(Clock.started_at)
    if lock:
        query = query.with_for_update()
    return list((await session.scalars(query)).all())


def meet(session: AsyncSession, clock: Clock, *, at: datetime, now: datetime) -> None:
    """The first response happened at ``at``.

    Before the deadline it is met, even when the event is processed after it (the breach
    is held back for the grace period, and a clock met in time never breaches). At or
    after the deadline it is a breach, reported now if the timer has not done so yet,
    then recorded as met after breach.
    """
    if clock.met_at is not None or clock.status == ClockStatus.stopped:
        return
    if clock.status == ClockStatus.running:
        if at < clock.due_at:
            clock.status, clock.met_at = ClockStatus.met, at
            _nothing_to_fire(clock, now)
            return
        breach(session, clock, now=now)
    clock.met_at, clock.met_after_breach, clock.updated_at = at, True, now


def stop(session: AsyncSession, clock: Clock, *, at: datetime, now: datetime) -> None:
    """The ticket was resolved or closed at ``at``: nothing more is measured.

    A deadline that passed before ``at`` was still breached and is reported as such.
    """
    if clock.stopped_at is not None:
        return
    if clock.status == ClockStatus.running:
        if at >= clock.due_at:
            breach(session, clock, now=now)
        else:
            clock.status = ClockStatus.stopped
            _nothing_to_fire(clock, now)
    clock.stopped_at, clock.updated_at = at, now


def fire(session: AsyncSession, clock: Clock, *, now: datetime, grace: float) -> None:
    """Fire what is due on a running clock whose ``fire_at`` has passed.

    A warning whose deadline has already passed (the service was down) is skipped: the
    breach that follows says more.
    """
    assert clock.fire_at is not None and clock.status == ClockStatus.running
    metrics.FIRE_LATENESS.observe(max((now - clock.fire_at).total_seconds(), 0.0))
    if clock.next_timer == Timer.warning:
        if now < clock.due_at:
            warn(session, clock, now=now)
        _next_is_breach(clock, grace)
        if clock.fire_at is not None and clock.fire_at > now:
            return
    breach(session, clock, now=now)


def warn(session: AsyncSession, clock: Clock, *, now: datetime) -> None:
    clock.warned_at, clock.updated_at = now, now
    _publish(session, SlaWarning(**_fields(clock, now)), event_id=f"{clock.id}:warning", now=now)
    on_commit(session, functools.partial(_count, metrics.WARNINGS, clock.name, clock.severity))


def breach(session: AsyncSession, clock: Clock, *, now: datetime) -> None:
    clock.status, clock.breached_at = ClockStatus.breached, now
    _nothing_to_fire(clock, now)
    lateness = (now - clock.due_at).total_seconds()
    _publish(session, SlaBreached(**_fields(clock, now), lateness_seconds=lateness),
             event_id=f"{clock.id}:breached", now=now)
    on_commit(session, functools.partial(_count, metrics.BREACHES, clock.name, clock.severity))


def _fields(clock: Clock, now: datetime) -> dict[str, object]:
    return {
        "ticket_id": clock.ticket_id,
        "clock": clock.name,
        "policy": clock.policy_id,
        "target_seconds": clock.target_seconds,
        "started_at": clock.started_at,
        "due_at": clock.due_at,
        "fired_at": now,
        "severity": Severity(clock.severity),
    }


def _publish(session: AsyncSession, data: SlaClockEvent, *, event_id: str, now: datetime) -> None:
    publish(session, CloudEvent[type(data)](  # type: ignore[misc]
        id=event_id, source=SOURCE, type=data.event_type, subject=data.ticket_id, time=now,
        data=data,
    ))


def _next_is_breach(clock: Clock, grace: float) -> None:
    clock.next_timer = Timer.breach
    clock.fire_at = clock.due_at + timedelta(seconds=grace)


def _nothing_to_fire(clock: Clock, now: datetime) -> None:
    clock.next_timer, clock.fire_at, clock.updated_at = None, None, now


def _count(counter: Counter, clock: str, severity: str) -> None:
    """Counted after commit, so a rolled-back fire is not counted."""
    counter.labels(clock, severity).inc()
