"""What the router does with each event it consumes.

The shared runner gives each event once (inbox) inside a transaction; these handlers
only translate the typed event into a routing decision in ``service``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router import service
from escalator.shared.consumer import Handlers
from escalator.shared.events import (
    CloudEvent,
    SlaBreached,
    TicketClosed,
    TicketCreated,
    TicketResolved,
    TicketUpdated,
)

handlers = Handlers()


@handlers.on(TicketCreated)
async def on_created(event: CloudEvent[TicketCreated], *, session: AsyncSession) -> None:
    await service.route_new_ticket(session, event.data)


@handlers.on(TicketUpdated)
async def on_updated(event: CloudEvent[TicketUpdated], *, session: AsyncSession) -> None:
    await service.update_severity(session, event.data.ticket_id, event.data.severity)


@handlers.on(SlaBreached)
async def on_breached(event: CloudEvent[SlaBreached], *, session: AsyncSession) -> None:
    await service.escalate_on_breach(session, event.data)


@handlers.on(TicketResolved, TicketClosed)
async def on_finished(
    event: CloudEvent[TicketResolved] | CloudEvent[TicketClosed], *, session: AsyncSession
) -> None:
    await service.release(session, event.data.ticket_id)
