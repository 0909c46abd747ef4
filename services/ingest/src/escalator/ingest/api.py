"""Ingest's REST API: channel events in, tickets and their lifecycle out."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from escalator.ingest import service
from escalator.ingest.schemas import (
    ApiChannelEvent,
    IngestResult,
    LifecycleRequest,
    TicketOut,
    TicketPage,
)
from escalator.shared.app import SessionDep
from escalator.shared.auth import require
from escalator.shared.events import Severity, TicketStatus

router = APIRouter(prefix="/v1")
write = require("tickets:write")
read = require("tickets:read")

#: Channels with an adapter in this build; each later adapter adds its name here.
Channel = Literal["api"]


@router.post(
    "/channels/{channel}/events",
    status_code=202,
    response_model=IngestResult,
    tags=["channels"],
    summary="Submit one inbound contact",
    dependencies=[write],
)
async def submit_event(
    channel: Channel, body: ApiChannelEvent, session: SessionDep, response: Response
) -> IngestResult:
    """Opens a ticket, or updates the one with the same ``external_id`` on this channel.

    Answers 202: routing, clocks and notifications follow asynchronously from the
    ``ticket.created`` / ``ticket.updated`` event committed with the ticket.
    """
    ticket, created = await service.ingest(session, channel, body)
    response.headers["Location"] = f"/v1/tickets/{ticket.id}"
    return IngestResult(ticket_id=ticket.id, created=created)


@router.get("/tickets", response_model=TicketPage, tags=["tickets"], dependencies=[read])
async def list_tickets(
    session: SessionDep,
    status: TicketStatus | None = None,
    severity: Severity | None = None,
    channel: str | None = None,
    customer_email: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TicketPage:
    rows, next_cursor = await service.list_tickets(
        session, limit=limit, cursor=cursor, status=status, severity=severity,
        channel=channel, customer_email=customer_email,
    )
    return TicketPage(items=[TicketOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/tickets/{ticket_id}", response_model=TicketOut, tags=["tickets"],
            dependencies=[read])
async def get_ticket(ticket_id: str, session: SessionDep) -> TicketOut:
    return TicketOut.model_validate(await service.get(session, ticket_id))


@router.post("/tickets/{ticket_id}/acknowledge", response_model=TicketOut, tags=["tickets"],
             dependencies=[write], summary="An agent takes the ticket (meets first response)")
async def acknowledge(
    ticket_id: str, session: SessionDep, body: LifecycleRequest | None = None
) -> TicketOut:
    return TicketOut.model_validate(await service.acknowledge(session, ticket_id))


@router.post("/tickets/{ticket_id}/resolve", response_model=TicketOut, tags=["tickets"],
             dependencies=[write])
async def resolve(
    ticket_id: str, session: SessionDep, body: LifecycleRequest | None = None
) -> TicketOut:
    return TicketOut.model_validate(await service.resolve(session, ticket_id))


@router.post("/tickets/{ticket_id}/close", response_model=TicketOut, tags=["tickets"],
             dependencies=[write])
async def close(
    ticket_id: str, session: SessionDep, body: LifecycleRequest | None = None
) -> TicketOut:
    return TicketOut.model_validate(await service.close(session, ticket_id))
