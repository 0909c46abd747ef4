"""A minimal service built on the shared mechanisms, so they are tested on their own.

Its one effect: every ``ticket.created`` appends a row to ``effects``; a ticket whose
subject is ``poison`` makes the handler fail every time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.app import ServiceSpec
from escalator.shared.consumer import Handlers
from escalator.shared.events import CloudEvent, TicketCreated
from escalator.shared.settings import ServiceSettings

metadata = MetaData()
effects = Table(
    "effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(255), nullable=False),
    Column("ticket_id", String(255), nullable=False),
)

handlers = Handlers()


@handlers.on(TicketCreated)
async def record_effect(event: CloudEvent[TicketCreated], *, session: AsyncSession) -> None:
    if event.data.subject == "poison":
        raise ValueError("this ticket always fails")
    await session.execute(insert(effects).values(event_id=event.id, ticket_id=event.subject))


async def effect_count(session: AsyncSession, **where: Any) -> int:
    query = select(func.count()).select_from(effects)
    for column, value in where.items():
        query = query.where(effects.c[column] == value)
    return int(await session.scalar(query) or 0)


class ProbeSettings(ServiceSettings):
    service_name: str = "probe"


SPEC = ServiceSpec(
    name="probe",
    title="probe",
    description="test service",
    migrations=Path(__file__).parent / "migrations",
    handlers=handlers,
)
