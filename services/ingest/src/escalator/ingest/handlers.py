"""Ingest consumes only ``ticket.assigned``, to show who holds a ticket and its
``assigned`` state to frontends without them asking the router."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.ingest import lifecycle
from escalator.shared.consumer import Handlers
from escalator.shared.events import CloudEvent, TicketAssigned

handlers = Handlers()


@handlers.on(TicketAssigned)
async def on_assigned(event: CloudEvent[TicketAssigned], *, session: AsyncSession) -> None:
    holder = event.data.assignee
    await lifecycle.assigned(session, event.data.ticket_id,
                             holder.agent_id if holder is not None else None)
