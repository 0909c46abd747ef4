"""What postmortem does with consumed events: every event joins its ticket's timeline
(``on_every`` runs first, so a close is already in the timeline it counts), a close opens
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
async def collect(event: CloudEvent[Any], *, session: AsyncSession) -> None:
    if await service.record_event(session, event):
        await service.reconsider(session, event)


@handlers.on(TicketClosed)
async def ticket_closed(event: CloudEvent[Any], *, session: AsyncSession) -> None:
    await service.open_for_closed_ticket(session, event)
