"""Events the notifier turns into deliveries.

Planning only stores pending deliveries, in the consumer's transaction (so the inbox
entry and the deliveries commit together); the dispatcher sends them after the commit.
A slow or dead webhook therefore never holds up the consumer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.notifier import service
from escalator.notifier.dispatcher import DISPATCHER, Dispatcher
from escalator.shared.app import runtime_of
from escalator.shared.consumer import Handlers
from escalator.shared.db import on_commit
from escalator.shared.events import CloudEvent, SlaBreached, TicketAssigned, TicketEscalated

handlers = Handlers()


@handlers.on(TicketAssigned, TicketEscalated, SlaBreached)
async def notify(event: CloudEvent[Any], *, session: AsyncSession) -> None:
    planned = await service.plan_deliveries(session, event)
    dispatcher: Dispatcher | None = runtime_of(session).extras.get(DISPATCHER)
    if planned and dispatcher is not None:
        on_commit(session, dispatcher.wake)
