"""Ingest consumes only ``ticket.assigned``, to show who holds a ticket and its
``assigned`` state to frontends without them asking the router."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.ingest import lifecycle
from escalator.shared.consumer import Handlers
from escalator.shared.events import CloudEvent, TicketAssigned

handlers = Handlers()


@handlers.on_batch(TicketAssigned)
async def on_assigned(events: list[CloudEvent[TicketAssigned]], *,
                      session: AsyncSession) -> None:
    await lifecycle.assigned(session, [
        (event.data.ticket_id, event.data.assignee.agent_id if event.data.assignee else None)
        for event in events])
