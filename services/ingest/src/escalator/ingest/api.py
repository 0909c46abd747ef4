"""Ingest's ticket REST API: read, search and drive the lifecycle; the customer directory."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from escalator.ingest import customers, idempotency, lifecycle
from escalator.ingest.config import CustomerConfig
from escalator.ingest.models import CustomerAccount, Ticket
from escalator.ingest.schemas import (
    CommentIn,
    CommentOut,
    LifecycleRequest,
    LinkIn,
    TicketOut,
    TicketPage,
    TicketState,
)
from escalator.shared.app import SessionDep
from escalator.shared.auth import require
from escalator.shared.config import Timestamp
from escalator.shared.events import Severity, TicketStatus
from escalator.shared.pagination import newest_first
from escalator.shared.problems import Problem

router = APIRouter(prefix="/v1")
write = require("tickets:write")
read = require("tickets:read")
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Impossible transition; `ticket_state` says why"}
}


@router.get("/tickets", response_model=TicketPage, tags=["tickets"], dependencies=[read])
async def list_tickets(
    session: SessionDep,
    status: TicketStatus | None = None,
    state: TicketState | None = None,
    severity: Severity | None = None,
    channel: str | None = None,
    customer_email: str | None = None,
    customer: Annotated[str | None, Query(description="Customer account id")] = None,
    assignee: Annotated[str | None, Query(description="Agent id holding the ticket")] = None,
    parent_id: str | None = None,
    executive: bool | None = None,
    created_after: Timestamp | None = None,
    created_before: Timestamp | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TicketPage:
    query = select(Ticket)
    for column, value in (
        (Ticket.status, status), (Ticket.state, state), (Ticket.severity, severity),
        (Ticket.channel, channel), (Ticket.customer_email, customer_email),
        (Ticket.customer_account_id, customer), (Ticket.assignee_id, assignee),
        (Ticket.parent_id, parent_id), (Ticket.executive, executive),
    ):
        if value is not None:
            query = query.where(column == value)
    if created_after is not None:
        query = query.where(Ticket.created_at >= created_after)
    if created_before is not None:
        query = query.where(Ticket.created_at < created_before)
    rows, next_cursor = await newest_first(session, query, created=Ticket.created_at,
                                           key=Ticket.id, limit=limit, cursor=cursor)
    return TicketPage(items=[TicketOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/tickets/{ticket_id}", response_model=TicketOut, tags=["tickets"],
            dependencies=[read])
async def get_ticket(ticket_id: str, session: SessionDep) -> TicketOut:
    return TicketOut.model_validate(await lifecycle.get(session, ticket_id))


@router.post("/tickets/{ticket_id}/acknowledge", response_model=TicketOut, tags=["tickets"],
             dependencies=[write], responses=_CONFLICT,
             summary="An agent takes the ticket (meets first response)")
async def acknowledge(
    ticket_id: str, session: SessionDep, body: LifecycleRequest | None = None
) -> TicketOut:
    return TicketOut.model_validate(await lifecycle.acknowledge(session, ticket_id))


@router.post("/tickets/{ticket_id}/wait-on-customer", response_model=TicketOut,
             tags=["tickets"], dependencies=[write], responses=_CONFLICT,
             summary="The agent needs the customer's answer (SLA clocks pause)")
async def wait_on_customer(
    ticket_id: str, session: SessionDep, body: LifecycleRequest | None = None
) -> TicketOut:
    return TicketOut.model_validate(await lifecycle.wait_on_customer(session, ticket_id))


@router.post("/tickets/{ticket_id}/resolve", response_model=TicketOut, tags=["tickets"],
             dependencies=[write], responses=_CONFLICT)
async def resolve(
    ticket_id: str, session: SessionDep, body: LifecycleRequest | None = None
) -> TicketOut:
    return TicketOut.model_validate(await lifecycle.resolve(session, ticket_id))


@router.post("/tickets/{ticket_id}/close", response_model=TicketOut, tags=["tickets"],
             dependencies=[write], responses=_CONFLICT)
async def close(
    ticket_id: str, session: SessionDep, body: LifecycleRequest | None = None
) -> TicketOut:
    return TicketOut.model_validate(await lifecycle.close(session, ticket_id))


@router.post("/tickets/{ticket_id}/reopen", response_model=TicketOut, tags=["tickets"],
             dependencies=[write], responses=_CONFLICT,
             summary="Resume work on a resolved ticket (closed tickets stay closed)")
async def reopen(
    ticket_id: str, session: SessionDep, body: LifecycleRequest | None = None
) -> TicketOut:
    note = body.note if body is not None else None
    return TicketOut.model_validate(await lifecycle.reopen(session, ticket_id, reason=note))


@router.post("/tickets/{ticket_id}/comments", status_code=201, response_model=CommentOut,
             tags=["tickets"], dependencies=[write], responses=_CONFLICT,
             summary="Comment (public or internal); a customer's comment is a reply")
async def add_comment(ticket_id: str, body: CommentIn, request: Request,
                      session: SessionDep) -> Response:
    replayed = await idempotency.replay(session, request)
    if replayed is not None:
        return replayed
    comment = await lifecycle.add_comment(session, ticket_id, author_type=body.author_type,
                                          author=body.author, public=body.public, body=body.body)
    out = CommentOut.model_validate(comment).model_dump(mode="json")
    await idempotency.remember(session, request, 201, out)
    return JSONResponse(out, status_code=201)


@router.get("/tickets/{ticket_id}/comments", response_model=list[CommentOut],
            tags=["tickets"], dependencies=[read])
async def list_comments(ticket_id: str, session: SessionDep,
                        public_only: bool = False) -> list[CommentOut]:
    rows = await lifecycle.comments(session, ticket_id, public_only=public_only)
    return [CommentOut.model_validate(r) for r in rows]


@router.post("/tickets/{ticket_id}/link", response_model=TicketOut, tags=["tickets"],
             dependencies=[write], responses=_CONFLICT,
             summary="Make this ticket a child of a parent incident")
async def link(ticket_id: str, body: LinkIn, session: SessionDep) -> TicketOut:
    return TicketOut.model_validate(await lifecycle.link(session, ticket_id, body.parent_id))


@router.get("/customers", response_model=list[CustomerConfig], tags=["customers"],
            dependencies=[read])
async def list_customers(session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                         after: str | None = None) -> list[CustomerConfig]:
    query = select(CustomerAccount).order_by(CustomerAccount.id).limit(limit)
    if after:
        query = query.where(CustomerAccount.id > after)
    return [_customer_out(a) for a in await session.scalars(query)]


@router.get("/customers/{customer_id}", response_model=CustomerConfig, tags=["customers"],
            dependencies=[read])
async def get_customer(customer_id: str, session: SessionDep) -> CustomerConfig:
    return _customer_out(await customers.get(session, customer_id))


@router.put("/customers/{customer_id}", response_model=CustomerConfig, tags=["customers"],
            dependencies=[write], summary="Create or replace a directory account")
async def put_customer(customer_id: str, body: CustomerConfig,
                       session: SessionDep) -> CustomerConfig:
    if body.id != customer_id:
        raise Problem(422, "Request validation failed", "body.id differs from the path",
                      errors=[{"field": "body.id", "message": "must equal the path id",
                               "type": "value_error"}])
    return _customer_out(await customers.upsert(session, body))


@router.delete("/customers/{customer_id}", status_code=204, tags=["customers"],
               dependencies=[write])
async def delete_customer(customer_id: str, session: SessionDep) -> Response:
    await customers.remove(session, customer_id)
    return Response(status_code=204)


def _customer_out(account: CustomerAccount) -> CustomerConfig:
    data = dict(account.data or {})
    data.update(id=account.id, name=account.name, email=account.email, tier=account.tier,
                language=account.language)
    return CustomerConfig.model_validate(data)
