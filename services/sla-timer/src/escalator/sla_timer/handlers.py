"""What the sla-timer does for each ticket event.

Times come from the event (``event.time``, normalised to UTC), not from when it is
processed: a clock starts when the ticket was created, and an acknowledgement counts
from when it was made, however late it reaches us.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.app import runtime_of
from escalator.shared.consumer import Handlers
from escalator.shared.db import on_commit
from escalator.shared.events import (
    CloudEvent,
    TicketAcknowledged,
    TicketClosed,
    TicketCreated,
    TicketResolved,
    utcnow,
)
from escalator.sla_timer import service
from escalator.sla_timer.models import FIRST_RESPONSE
from escalator.sla_timer.policies import policy_for
from escalator.sla_timer.settings import SlaTimerSettings
from escalator.sla_timer.timers import TimerLoop

handlers = Handlers()

TIMERS = "sla_timer.timers"


def _settings(session: AsyncSession) -> SlaTimerSettings:
    settings = runtime_of(session).settings
    assert isinstance(settings, SlaTimerSettings)
    return settings


def _timers(session: AsyncSession) -> TimerLoop:
    timers: TimerLoop = runtime_of(session).extras[TIMERS]
    return timers


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


@handlers.on(TicketCreated)
async def start_first_response(
    event: CloudEvent[TicketCreated], *, session: AsyncSession
) -> None:
    ticket = event.data
    existing = await service.clocks_of(session, ticket.ticket_id)
    if any(clock.name == FIRST_RESPONSE for clock in existing):
        return
    policy = await policy_for(session, ticket)
    if policy is None:
        return
    clock = service.start_clock(session, policy, ticket, at=_utc(event.time),
                                grace=_settings(session).breach_grace_seconds)
    on_commit(session, functools.partial(_timers(session).schedule, clock.fire_at))


@handlers.on(TicketAcknowledged)
async def first_response_met(
    event: CloudEvent[TicketAcknowledged], *, session: AsyncSession
) -> None:
    await _each_clock(session, event, service.meet)


@handlers.on(TicketResolved, TicketClosed)
async def stop_clocks(event: CloudEvent[Any], *, session: AsyncSession) -> None:
    await _each_clock(session, event, service.stop)


async def _each_clock(
    session: AsyncSession, event: CloudEvent[Any], change: Callable[..., None]
) -> None:
    # Locked so the timer loop of any replica cannot fire a clock while we decide on it.
    for clock in await service.clocks_of(session, event.data.ticket_id, lock=True):
        change(session, clock, at=_utc(event.time), now=utcnow())
