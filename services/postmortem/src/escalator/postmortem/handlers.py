"""What postmortem does with consumed events: every event joins its ticket's timeline
(``on_every`` runs first, a batch at a time, so a close is already in the timeline it
counts), a close opens
the ticket's post-mortem if it was an escalation, and a late escalation or breach for a
closed ticket opens it then."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.postmortem import service
from escalator.shared.consumer import Handlers
from escalator.shared.events import CloudEvent, TicketClosed

handlers = Handlers()


@handlers.on_every
async def collect(events: list[CloudEvent[Any]], *, session: AsyncSession) -> None:
    await service.reconsider_all(session, await service.record_events(session, events))


@handlers.on(TicketClosed)
async def ticket_closed(event: CloudEvent[Any], *, session: AsyncSession) -> None:
    await service.open_for_closed_ticket(session, event)
