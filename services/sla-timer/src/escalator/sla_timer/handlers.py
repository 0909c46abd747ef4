"""What the sla-timer does for each ticket event.

Times come from the event (``event.time``, normalised to UTC), not from when it is
processed: a clock starts when the ticket was created, and an acknowledgement counts
from when it was made, however late it reaches us.

The clocks, and what moves them:

- ``first_response``: from creation; met by an acknowledgement or the first public
  agent comment, which also starts the first ``next_update``.
- ``next_update`` (when the policy has one): met by every public agent comment, which
  starts the next cycle; when due it fires ``sla.update_due``.
- ``resolution`` (when the policy has one): from creation; met by resolve; a reopen
  starts a new cycle (the old row stays as history).
- ``acknowledgement``: from each ``ticket.assigned`` that carries an ack timeout,
  in wall time; met by an acknowledgement; a new assignment supersedes it.
- Waiting on the customer pauses every running clock except ``acknowledgement``; the
  customer's reply resumes them. A severity change re-targets running clocks by the
  policy now matching; a level change resets or extends them as the policy says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.app import runtime_of
from escalator.shared.consumer import Handlers
from escalator.shared.db import on_commit
from escalator.shared.events import (
    CloudEvent,
    EventData,
    TicketAcknowledged,
    TicketAssigned,
    TicketClosed,
    TicketCommented,
    TicketCreated,
    TicketCustomerReplied,
    TicketReopened,
    TicketResolved,
    TicketSnapshot,
    TicketUpdated,
    TicketWaitingOnCustomer,
    utcnow,
)
from escalator.sla_timer import service
from escalator.sla_timer.calendar import Calendar
from escalator.sla_timer.calendars import ALWAYS, calendar_of
from escalator.sla_timer.models import (
    ACKNOWLEDGEMENT,
    FIRST_RESPONSE,
    NEXT_UPDATE,
    RESOLUTION,
    Clock,
    ClockStatus,
    SlaPolicy,
)
from escalator.sla_timer.policies import policies_of, policy_for
from escalator.sla_timer.settings import SlaTimerSettings
from escalator.sla_timer.timers import TimerLoop

handlers = Handlers()

TIMERS = "sla_timer.timers"
BUSINESS_CLOCKS = (FIRST_RESPONSE, NEXT_UPDATE, RESOLUTION)


def _grace(session: AsyncSession) -> float:
    settings = runtime_of(session).settings
    assert isinstance(settings, SlaTimerSettings)
    return settings.breach_grace_seconds


def _wake(session: AsyncSession, clocks: list[Clock]) -> None:
    """Tell the timer loop about new fire times, after the commit that stores them."""
    timers: TimerLoop = runtime_of(session).extras[TIMERS]
    times = [c.fire_at for c in clocks if c.fire_at is not None]
    if times:
        on_commit(session, lambda: timers.schedule(min(times)))


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


def _target(policy: SlaPolicy, name: str) -> float | None:
    return {FIRST_RESPONSE: policy.first_response_seconds, NEXT_UPDATE:
            policy.next_update_seconds, RESOLUTION: policy.resolution_seconds}.get(name)


async def _start(session: AsyncSession, clocks: list[Clock], policy: SlaPolicy,
                 ticket: TicketSnapshot, name: str, at: datetime) -> Clock | None:
    target = _target(policy, name)
    if target is None:
        return None
    cycle = max((c.cycle + 1 for c in clocks if c.name == name), default=0)
    level = next((c.level for c in reversed(clocks) if c.level is not None), None)
    clock = service.start_clock(
        session, ticket_id=ticket.ticket_id, name=name, cycle=cycle, target=target,
        policy=policy, policy_id=policy.id, severity=ticket.severity.value,
        calendar=await calendar_of(session, policy.calendar_id),
        calendar_id=policy.calendar_id, level=level, at=at, grace=_grace(session))
    clocks.append(clock)
    return clock


async def _calendar(session: AsyncSession, clock: Clock) -> Calendar:
    return ALWAYS if clock.name == ACKNOWLEDGEMENT else await calendar_of(session,
                                                                          clock.calendar_id)


TicketHandler = Callable[[AsyncSession, CloudEvent[Any], list[Clock]], Awaitable[None]]


#: Each ticket event type's handler (``per_ticket``).
_PER_TICKET: dict[str, TicketHandler] = {}


async def _apply_run(events: list[CloudEvent[Any]], *, session: AsyncSession) -> None:
    held = await service.clocks_of_many(session, [e.data.ticket_id for e in events], lock=True)
    for event in events:
        await _PER_TICKET[event.type](session, event, held.setdefault(event.data.ticket_id, []))


def per_ticket(*models: type[EventData]) -> Callable[[TicketHandler], TicketHandler]:
    """Register ``fn(session, event, clocks)``, given its ticket's clocks, locked.

    Every handler registered here shares one batch handler, so a run of ticket events of
    any types (in order) reads and locks its tickets' clocks with one query; each event
    is then applied to its ticket's list, which gains the clocks the run's earlier events
    started. A read per event, or per run of one type, cost more than the handling: the
    query, and the flush of the previous events' changes it made first."""

    def register(fn: TicketHandler) -> TicketHandler:
        for model in models:
            _PER_TICKET[model.event_type] = fn
        handlers.on_batch(*models)(_apply_run)
        return fn

    return register


@per_ticket(TicketCreated)
async def start_clocks(session: AsyncSession, event: CloudEvent[TicketCreated],
                       clocks: list[Clock]) -> None:
    """First response and resolution by the first matching policy; a creation seen again
    (another event id) finds its ticket's clocks started and changes nothing."""
    ticket, at = event.data, _utc(event.time)
    if any(clock.name == FIRST_RESPONSE for clock in clocks):
        return
    policy = await policy_for(session, ticket)
    if policy is None:
        return
    for name in (FIRST_RESPONSE, RESOLUTION):
        await _start(session, clocks, policy, ticket, name, at)
    _wake(session, clocks)


@per_ticket(TicketAcknowledged)
async def acknowledged(session: AsyncSession, event: CloudEvent[TicketAcknowledged],
                       clocks: list[Clock]) -> None:
    await _first_response(session, event.data, _utc(event.time), reply=False, clocks=clocks)


@per_ticket(TicketCommented)
async def commented(session: AsyncSession, event: CloudEvent[TicketCommented],
                    clocks: list[Clock]) -> None:
    comment = event.data.comment
    if comment.author_type == "agent" and comment.public:
        await _first_response(session, event.data, _utc(event.time), reply=True,
                              clocks=clocks)


async def _first_response(session: AsyncSession, ticket: TicketSnapshot, at: datetime, *,
                          reply: bool, clocks: list[Clock]) -> None:
    """An acknowledgement meets first response and the acknowledgement timeout; a public
    agent reply meets first response and the pending customer update. Either way the
    customer has heard from us, so the next update clock starts (once per reply)."""
    now = utcnow()
    first = next((c for c in clocks if c.name == FIRST_RESPONSE), None)
    if first is None:
        return
    answered_first = first.met_at is None and first.status != ClockStatus.stopped
    names = (FIRST_RESPONSE, NEXT_UPDATE) if reply else (FIRST_RESPONSE, ACKNOWLEDGEMENT)
    for clock in clocks:
        if clock.name in names:
            service.meet(session, clock, at=at, now=now)
    if not (reply or answered_first) or ticket.status.value in ("resolved", "closed"):
        return
    paused = any(c.name in BUSINESS_CLOCKS and c.status == ClockStatus.running
                 and c.resumed_at is None for c in clocks)
    policy = (await policies_of(session)).get(first.policy_id)
    if policy is not None:
        started = await _start(session, clocks, policy, ticket, NEXT_UPDATE, at)
        if started is not None and paused:
            service.pause(session, started, ALWAYS, at=at, now=now)
        _wake(session, clocks)


@per_ticket(TicketWaitingOnCustomer)
async def waiting(session: AsyncSession, event: CloudEvent[TicketWaitingOnCustomer],
                  clocks: list[Clock]) -> None:
    now, at = utcnow(), _utc(event.time)
    for clock in clocks:
        if clock.name in BUSINESS_CLOCKS:
            service.pause(session, clock, await _calendar(session, clock), at=at, now=now)


@per_ticket(TicketCustomerReplied)
async def customer_replied(session: AsyncSession, event: CloudEvent[TicketCustomerReplied],
                           clocks: list[Clock]) -> None:
    now, at, grace = utcnow(), _utc(event.time), _grace(session)
    for clock in clocks:
        if clock.name in BUSINESS_CLOCKS:
            service.resume(clock, await _calendar(session, clock), at=at, now=now, grace=grace)
    _wake(session, clocks)


@per_ticket(TicketUpdated)
async def updated(session: AsyncSession, event: CloudEvent[TicketUpdated],
                  clocks: list[Clock]) -> None:
    """A severity change re-targets the running clocks by the policy that now matches."""
    ticket, now, grace = event.data, utcnow(), _grace(session)
    changed = [c for c in clocks if c.name in BUSINESS_CLOCKS and c.status ==
               ClockStatus.running and c.severity != ticket.severity.value]
    policy = await policy_for(session, ticket) if changed else None
    if policy is None:
        return
    for clock in changed:
        target = _target(policy, clock.name)
        if target is not None:
            clock.policy_id, clock.calendar_id = policy.id, policy.calendar_id
            service.retarget(clock, await _calendar(session, clock), target=target,
                             warn=service.warn_after(policy, target),
                             severity=ticket.severity.value, now=now, grace=grace)
    _wake(session, clocks)


@per_ticket(TicketResolved)
async def resolved(session: AsyncSession, event: CloudEvent[TicketResolved],
                   clocks: list[Clock]) -> None:
    now, at = utcnow(), _utc(event.time)
    for clock in clocks:
        if clock.name == RESOLUTION:
            service.meet(session, clock, at=at, now=now)
        else:
            service.stop(session, clock, at=at, now=now)


@per_ticket(TicketClosed)
async def closed(session: AsyncSession, event: CloudEvent[TicketClosed],
                 clocks: list[Clock]) -> None:
    now, at = utcnow(), _utc(event.time)
    for clock in clocks:
        service.stop(session, clock, at=at, now=now)


@per_ticket(TicketReopened)
async def reopened(session: AsyncSession, event: CloudEvent[TicketReopened],
                   clocks: list[Clock]) -> None:
    """A new resolution cycle from the reopen; earlier cycles stay as history."""
    ticket, at = event.data, _utc(event.time)
    first = next((c for c in clocks if c.name == FIRST_RESPONSE), None)
    policy = (await policies_of(session)).get(first.policy_id) if first else None
    if policy is None or any(c.name == RESOLUTION and c.started_at == at for c in clocks):
        return  # no clocks for this ticket, or this reopen was applied already
    await _start(session, clocks, policy, ticket, RESOLUTION, at)
    _wake(session, clocks)


@per_ticket(TicketAssigned)
async def assigned(session: AsyncSession, event: CloudEvent[TicketAssigned],
                   clocks: list[Clock]) -> None:
    """Record the level on every clock, apply the policy's level-change rule, and time
    the new assignee's acknowledgement (superseding the previous one's)."""
    data, now, at, grace = event.data, utcnow(), _utc(event.time), _grace(session)
    first = next((c for c in clocks if c.name == FIRST_RESPONSE), None)
    policy = (await policies_of(session)).get(first.policy_id) if first else None
    for clock in clocks:
        if clock.name == ACKNOWLEDGEMENT:
            service.stop(session, clock, at=at, now=now)
        elif clock.level is not None and clock.level != data.level and policy is not None:
            service.change_level(clock, await _calendar(session, clock),
                                 how=policy.on_level_change, level=data.level, at=at,
                                 now=now, grace=grace)
        else:
            clock.level = data.level
    if data.ack_timeout_seconds and data.assignee is not None:
        cycle = max((c.cycle + 1 for c in clocks if c.name == ACKNOWLEDGEMENT), default=0)
        clocks.append(service.start_clock(
            session, ticket_id=data.ticket_id, name=ACKNOWLEDGEMENT, cycle=cycle,
            target=data.ack_timeout_seconds, policy=None, policy_id=data.path,
            severity=data.severity.value, calendar=ALWAYS, calendar_id=None,
            level=data.level, at=at, grace=grace))
    _wake(session, clocks)
