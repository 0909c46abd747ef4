"""Clock operations. They never commit: the caller's transaction also carries the events.

Every transition takes the time it happened at (the event's time, or the timer loop's
"now"), never the time it is processed, so a late-processed event is judged by when it
happened. Each operation expects the clock rows locked by the caller (``clocks_of_many(...,
lock=True)`` or the timer loop's claim), so a handler and a timer never both decide.

A clock measures business time in its calendar: ``elapsed_seconds`` holds what earlier
running stretches counted, ``resumed_at`` starts the current stretch (None while
paused), and the due time is ``calendar.add(resumed_at, target - elapsed)``. Pausing
banks the stretch; paused time never counts.

Clock ids are derived from (ticket, clock, cycle), and warnings and breaches go out with
event ids derived from the clock id (``<clock id>:breached``): replaying a ticket's
events rebuilds the same clocks, and the outbox's unique event id makes a second breach
of one clock impossible to commit.
"""

from __future__ import annotations

import collections
import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from escalator.shared.db import on_commit, per_key
from escalator.shared.events import (
    Severity,
    SlaBreached,
    SlaClockEvent,
    SlaUpdateDue,
    SlaWarning,
)
from escalator.shared.outbox import emit
from escalator.sla_timer import metrics
from escalator.sla_timer.calendar import Calendar
from escalator.sla_timer.models import NEXT_UPDATE, Clock, ClockStatus, SlaPolicy, Timer

SOURCE = "/escalator/sla-timer"
_IDS = uuid.UUID("5f0c1d52-8a53-4c1e-9d0e-2b1a7f1c9e01")


def clock_id(ticket_id: str, name: str, cycle: int) -> str:
    return str(uuid.uuid5(_IDS, f"{ticket_id}/{name}/{cycle}"))


def warn_after(policy: SlaPolicy | None, target: float) -> float | None:
    """Business seconds into ``target`` at which the policy warns; None for no warning."""
    if policy is None:
        return None
    if policy.warning_before_seconds is not None:
        return max(target - policy.warning_before_seconds, 0.0)
    if policy.warning_at is not None:
        return target * policy.warning_at
    return None


def start_clock(
    session: AsyncSession, *, ticket_id: str, name: str, cycle: int, target: float,
    policy: SlaPolicy | None, policy_id: str, severity: str, calendar: Calendar,
    calendar_id: str | None, level: int | None, at: datetime, grace: float,
) -> Clock:
    """A running clock from ``at``, with the policy's targets copied in (a snapshot)."""
    clock = Clock(
        id=clock_id(ticket_id, name, cycle), ticket_id=ticket_id, name=name, cycle=cycle,
        policy_id=policy_id, target_seconds=target, severity=severity,
        status=ClockStatus.running, started_at=at, calendar_id=calendar_id, level=level,
        elapsed_seconds=0.0, resumed_at=at, warn_after_seconds=warn_after(policy, target),
        due_at=at, met_after_breach=False, updated_at=at,
    )
    schedule(clock, calendar, grace)
    session.add(clock)
    return clock


def schedule(clock: Clock, calendar: Calendar, grace: float) -> None:
    """Recompute due time, warning time and the next timer of a running clock."""
    if clock.status != ClockStatus.running or clock.resumed_at is None:
        clock.next_timer, clock.fire_at, clock.warn_at = None, None, None
        return
    clock.due_at = calendar.add(clock.resumed_at, clock.target_seconds - clock.elapsed_seconds)
    clock.warn_at = None
    if (clock.warn_after_seconds is not None and clock.warned_at is None
            and clock.warn_after_seconds > clock.elapsed_seconds):
        clock.warn_at = calendar.add(clock.resumed_at,
                                     clock.warn_after_seconds - clock.elapsed_seconds)
    if clock.warn_at is not None:
        clock.next_timer, clock.fire_at = Timer.warning, clock.warn_at
    else:
        clock.next_timer = Timer.breach
        clock.fire_at = clock.due_at + timedelta(seconds=grace)


async def clocks_of_many(session: AsyncSession, ticket_ids: list[str], *,
                         lock: bool = False) -> dict[str, list[Clock]]:
    """Each ticket's clocks in the order they started, for many tickets with one query
    (locked in ticket order, so two transactions locking overlapping sets queue rather
    than deadlock)."""
    query = _clocks_query(session.get_bind().dialect.name, lock)
    found: dict[str, list[Clock]] = {}
    for clock in await session.scalars(query, {"tickets": sorted(set(ticket_ids))}):
        found.setdefault(clock.ticket_id, []).append(clock)
    return found


@functools.cache
def _clocks_query(dialect: str, lock: bool) -> Any:
    """``clocks_of_many``'s query, built once: building it and its cache key anew cost
    about as much CPU as its round trip."""
    # A probe per ticket on PostgreSQL, whatever the statistics (per_key); ordered inside
    # too: a lock takes one ticket's clocks in this order, whatever the plan.
    mine = select(Clock).order_by(Clock.started_at, Clock.name, Clock.cycle)
    rows, source = per_key(mine.with_for_update() if lock else mine, Clock.ticket_id,
                           "tickets", dialect)
    clock = aliased(Clock, rows)
    return select(clock).select_from(source).order_by(
        clock.ticket_id, clock.started_at, clock.name, clock.cycle)


def elapsed(clock: Clock, calendar: Calendar, now: datetime) -> float:
    """Business seconds the clock has counted up to ``now`` (or until it ended)."""
    ends = [t for t in (clock.met_at, clock.stopped_at, now) if t is not None]
    if clock.status == ClockStatus.breached and clock.met_at is None:
        ends = [t for t in (clock.stopped_at, now) if t is not None]
    running = 0.0
    if clock.resumed_at is not None:
        running = calendar.between(clock.resumed_at, min(ends))
    return clock.elapsed_seconds + running


def pause(session: AsyncSession, clock: Clock, calendar: Calendar, *, at: datetime,
          now: datetime) -> None:
    """Waiting on the customer from ``at``: bank the running stretch, stop the timer.

    A deadline that had passed before ``at`` was breached all the same.
    """
    if clock.status != ClockStatus.running or clock.resumed_at is None:
        return
    if at >= clock.due_at:
        breach(session, clock, now=now)
        return
    clock.elapsed_seconds += calendar.between(clock.resumed_at, at)
    clock.resumed_at, clock.paused_at = None, at
    _nothing_to_fire(clock, now)
    clock.warn_at = None


def resume(clock: Clock, calendar: Calendar, *, at: datetime, now: datetime,
           grace: float) -> None:
    """The customer answered at ``at``: the clock counts again from there."""
    if clock.status != ClockStatus.running or clock.resumed_at is not None:
        return
    clock.resumed_at, clock.paused_at, clock.updated_at = max(at, clock.paused_at or at), None, now
    schedule(clock, calendar, grace)


def retarget(clock: Clock, calendar: Calendar, *, target: float, warn: float | None,
             severity: str, now: datetime, grace: float) -> None:
    """A new severity: the same clock, measured against the new policy's target."""
    if clock.status != ClockStatus.running:
        return
    clock.target_seconds, clock.warn_after_seconds = target, warn
    clock.severity, clock.updated_at = severity, now
    schedule(clock, calendar, grace)


def change_level(clock: Clock, calendar: Calendar, *, how: str, level: int, at: datetime,
                 now: datetime, grace: float) -> None:
    """The ticket moved to ``level``: reset (full target from ``at``) or extend (one more
    target on top) a running clock, per its policy; ``keep`` only records the level."""
    clock.level, clock.updated_at = level, now
    if clock.status != ClockStatus.running:
        return
    if how == "reset":
        clock.elapsed_seconds, clock.warned_at = 0.0, None
        if clock.resumed_at is not None:
            clock.resumed_at = at
    elif how == "extend":
        if clock.warn_after_seconds is not None:
            clock.warn_after_seconds += clock.target_seconds
            clock.warned_at = None
        clock.target_seconds *= 2
    else:
        return
    schedule(clock, calendar, grace)


def meet(session: AsyncSession, clock: Clock, *, at: datetime, now: datetime) -> None:
    """The target was met at ``at``.

    Before the deadline it is met, even when the event is processed after it (the breach
    is held back for the grace period, and a clock met in time never breaches). At or
    after the deadline it is a breach, reported now if the timer has not done so yet,
    then recorded as met after breach. A paused clock's deadline is not running, so an
    answer while paused is in time.
    """
    if clock.met_at is not None or clock.status == ClockStatus.stopped:
        return
    if clock.status == ClockStatus.running:
        if at < clock.due_at or clock.resumed_at is None:
            clock.status, clock.met_at = ClockStatus.met, at
            _nothing_to_fire(clock, now)
            return
        breach(session, clock, now=now)
    clock.met_at, clock.met_after_breach, clock.updated_at = at, True, now


def stop(session: AsyncSession, clock: Clock, *, at: datetime, now: datetime) -> None:
    """Nothing more is measured from ``at`` (resolved, closed, superseded).

    A deadline that passed before ``at`` was still breached and is reported as such.
    """
    if clock.stopped_at is not None or clock.met_at is not None:
        return
    if clock.status == ClockStatus.running:
        if clock.resumed_at is not None and at >= clock.due_at:
            breach(session, clock, now=now)
        else:
            clock.status = ClockStatus.stopped
            _nothing_to_fire(clock, now)
    clock.stopped_at, clock.updated_at = at, now


@dataclass(slots=True)
class DueClock:
    """A clock the timer loop claimed, as a plain object: the columns firing reads and
    writes. Building an ORM instance per row would cost more than firing it."""

    id: str
    ticket_id: str
    name: str
    policy_id: str
    target_seconds: float
    severity: str
    level: int | None
    status: str
    started_at: datetime
    due_at: datetime
    fire_at: datetime | None
    next_timer: str | None
    warned_at: datetime | None
    breached_at: datetime | None
    updated_at: datetime


#: What firing changes on a clock (the timer loop writes these back).
FIRED_COLUMNS = ("status", "next_timer", "fire_at", "warned_at", "breached_at", "updated_at")

#: An event to queue: its id (unique per fact, see the module docstring) and its data.
Firing = tuple[str, SlaClockEvent]


def fire(clock: DueClock, *, now: datetime, grace: float) -> Firing | None:
    """Fire what is due on a running clock whose ``fire_at`` has passed; returns the event
    to queue in the same transaction, if any.

    A warning whose deadline has already passed (the service was down) is skipped: the
    breach that follows says more.
    """
    assert clock.fire_at is not None and clock.status == ClockStatus.running
    if clock.next_timer == Timer.warning:
        clock.next_timer = Timer.breach
        clock.fire_at = clock.due_at + timedelta(seconds=grace)
        if now < clock.due_at:
            clock.warned_at, clock.updated_at = now, now
            return f"{clock.id}:warning", SlaWarning(**_fields(clock, now))
        if clock.fire_at > now:
            return None
    return _breached(clock, now)


def breach(session: AsyncSession, clock: Clock, *, now: datetime) -> None:
    """A handler found the deadline passed before the timer fired: breach it now."""
    event_id, data = _breached(clock, now)
    emit(session, data, source=SOURCE, time=now, event_id=event_id)
    on_commit(session, functools.partial(count, [data]))


def _breached(clock: Clock | DueClock, now: datetime) -> Firing:
    """The deadline passed unmet. A missed customer update is ``sla.update_due`` (the
    customer must hear from us now); every other clock is ``sla.breached``."""
    clock.status, clock.breached_at = ClockStatus.breached, now
    _nothing_to_fire(clock, now)
    if clock.name == NEXT_UPDATE:
        return f"{clock.id}:due", SlaUpdateDue(**_fields(clock, now))
    lateness = (now - clock.due_at).total_seconds()
    return (f"{clock.id}:breached",
            SlaBreached(**_fields(clock, now), lateness_seconds=lateness))


def count(fired: Iterable[SlaClockEvent]) -> None:
    """Count fired warnings and breaches; call it after the commit, so a rolled-back fire
    is not counted. One increment per label set: a burst's counting stays cheap."""
    tally = collections.Counter((type(data), data.clock, data.severity.value) for data in fired)
    for (kind, clock, severity), times in tally.items():
        counter = {SlaBreached: metrics.BREACHES, SlaWarning: metrics.WARNINGS}.get(kind)
        if counter is not None:
            counter.labels(clock, severity).inc(times)


def _fields(clock: Clock | DueClock, now: datetime) -> dict[str, object]:
    return {
        "ticket_id": clock.ticket_id,
        "clock": clock.name,
        "policy": clock.policy_id,
        "target_seconds": clock.target_seconds,
        "started_at": clock.started_at,
        "due_at": clock.due_at,
        "fired_at": now,
        "severity": Severity(clock.severity),
        "level": clock.level,
    }


def _nothing_to_fire(clock: Clock | DueClock, now: datetime) -> None:
    clock.next_timer, clock.fire_at, clock.updated_at = None, None, now
