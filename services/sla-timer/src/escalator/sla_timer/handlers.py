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

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.app import runtime_of
from escalator.shared.consumer import Handlers
from escalator.shared.db import on_commit
from escalator.shared.events import (
    CloudEvent,
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
from escalator.sla_timer.policies import first_match, policies_of, policy_for
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


@handlers.on_batch(TicketCreated)
async def start_clocks(events: list[CloudEvent[TicketCreated]], *,
                       session: AsyncSession) -> None:
    """A run of new tickets: their clocks read (and locked) with one query and the
    policies once, where each creation cost both; a creation seen again (another event
    id) finds its ticket's clocks started and changes nothing."""
    held = await service.clocks_of_many(session, [e.data.ticket_id for e in events],
                                        lock=True)
    policies = list((await policies_of(session)).values())
    started: list[Clock] = []
    for event in events:
        ticket, at = event.data, _utc(event.time)
        clocks = held.setdefault(ticket.ticket_id, [])
        if any(clock.name == FIRST_RESPONSE for clock in clocks):
            continue
        policy = first_match(policies, ticket)
        if policy is None:
            continue
        for name in (FIRST_RESPONSE, RESOLUTION):
            if (clock := await _start(session, clocks, policy, ticket, name, at)) is not None:
                started.append(clock)
    _wake(session, started)


@handlers.on_batch(TicketAcknowledged)
async def acknowledged(events: list[CloudEvent[TicketAcknowledged]], *,
                       session: AsyncSession) -> None:
    """A run's clocks read and locked with one query, as for assignments."""
    held = await service.clocks_of_many(session, [e.data.ticket_id for e in events],
                                        lock=True)
    for event in events:
        await _first_response(session, event.data, _utc(event.time), reply=False,
                              clocks=held.setdefault(event.data.ticket_id, []))


@handlers.on(TicketCommented)
async def commented(event: CloudEvent[TicketCommented], *, session: AsyncSession) -> None:
    comment = event.data.comment
    if comment.author_type == "agent" and comment.public:
        await _first_response(session, event.data, _utc(event.time), reply=True,
                              clocks=await service.clocks_of(session, event.data.ticket_id,
                                                             lock=True))


async def _first_response(session: AsyncSession, ticket: TicketSnapshot, at: datetime, *,
                          reply: bool, clocks: list[Clock]) -> None:
    """An acknowledgement meets first response and the acknowledgement timeout; a public
    agent reply meets first response and the pending customer update. Either way the
    customer has heard from us, so the next update clock starts (once per reply).
    ``clocks``: the ticket's, locked."""
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


@handlers.on(TicketWaitingOnCustomer)
async def waiting(event: CloudEvent[TicketWaitingOnCustomer], *, session: AsyncSession) -> None:
    now, at = utcnow(), _utc(event.time)
    for clock in await service.clocks_of(session, event.data.ticket_id, lock=True):
        if clock.name in BUSINESS_CLOCKS:
            service.pause(session, clock, await _calendar(session, clock), at=at, now=now)


@handlers.on(TicketCustomerReplied)
async def customer_replied(event: CloudEvent[TicketCustomerReplied], *,
                           session: AsyncSession) -> None:
    now, at, grace = utcnow(), _utc(event.time), _grace(session)
    clocks = await service.clocks_of(session, event.data.ticket_id, lock=True)
    for clock in clocks:
        if clock.name in BUSINESS_CLOCKS:
            service.resume(clock, await _calendar(session, clock), at=at, now=now, grace=grace)
    _wake(session, clocks)


@handlers.on(TicketUpdated)
async def updated(event: CloudEvent[TicketUpdated], *, session: AsyncSession) -> None:
    """A severity change re-targets the running clocks by the policy that now matches."""
    ticket, now, grace = event.data, utcnow(), _grace(session)
    clocks = await service.clocks_of(session, ticket.ticket_id, lock=True)
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


@handlers.on(TicketResolved)
async def resolved(event: CloudEvent[TicketResolved], *, session: AsyncSession) -> None:
    now, at = utcnow(), _utc(event.time)
    for clock in await service.clocks_of(session, event.data.ticket_id, lock=True):
        if clock.name == RESOLUTION:
            service.meet(session, clock, at=at, now=now)
        else:
            service.stop(session, clock, at=at, now=now)


@handlers.on(TicketClosed)
async def closed(event: CloudEvent[TicketClosed], *, session: AsyncSession) -> None:
    now, at = utcnow(), _utc(event.time)
    for clock in await service.clocks_of(session, event.data.ticket_id, lock=True):
        service.stop(session, clock, at=at, now=now)


@handlers.on(TicketReopened)
async def reopened(event: CloudEvent[TicketReopened], *, session: AsyncSession) -> None:
    """A new resolution cycle from the reopen; earlier cycles stay as history."""
    ticket, at = event.data, _utc(event.time)
    clocks = await service.clocks_of(session, ticket.ticket_id, lock=True)
    first = next((c for c in clocks if c.name == FIRST_RESPONSE), None)
    policy = (await policies_of(session)).get(first.policy_id) if first else None
    if policy is None or any(c.name == RESOLUTION and c.started_at == at for c in clocks):
        return  # no clocks for this ticket, or this reopen was applied already
    await _start(session, clocks, policy, ticket, RESOLUTION, at)
    _wake(session, clocks)


@handlers.on_batch(TicketAssigned)
async def assigned(events: list[CloudEvent[TicketAssigned]], *,
                   session: AsyncSession) -> None:
    """Record the level on every clock, apply the policy's level-change rule, and time
    the new assignee's acknowledgement (superseding the previous one's).

    A run's clocks are read and locked with one query (the policies once per
    transaction: ``policies_of``), then each event is applied in order to its ticket's
    list (which gains the clocks the run starts), where a query per event cost more than
    the rest of its handling."""
    held = await service.clocks_of_many(session, [e.data.ticket_id for e in events],
                                        lock=True)
    policies = await policies_of(session)
    for event in events:
        await _assigned(session, event, held.setdefault(event.data.ticket_id, []), policies)


async def _assigned(session: AsyncSession, event: CloudEvent[TicketAssigned],
                    clocks: list[Clock], policies: dict[str, SlaPolicy]) -> None:
    data, now, at, grace = event.data, utcnow(), _utc(event.time), _grace(session)
    first = next((c for c in clocks if c.name == FIRST_RESPONSE), None)
    policy = policies.get(first.policy_id) if first else None
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
