"""The ticket lifecycle help-desk frontends drive, one function per transition.

States: new -> assigned -> acknowledged -> waiting_on_customer -> resolved -> closed,
and back: a customer reply moves waiting_on_customer to acknowledged, reopen moves a
resolved ticket back to where work resumes. ``closed`` is final (a help desk closes
duplicates and spam from any state; a later message opens a new ticket).

Repeating a transition the ticket already made is a no-op that emits nothing, so client
retries are harmless; any other impossible transition is a 409 problem naming the state.
Every change emits its event in the caller's transaction, carrying the full snapshot
(customer, contacts, language, severity, executive flag) so consumers never call back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Boolean, Table, and_, bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.ingest import metrics
from escalator.ingest.models import Ticket, TicketComment
from escalator.shared.db import UTCDateTime, on_commit
from escalator.shared.events import (
    Comment,
    Customer,
    Severity,
    TicketAcknowledged,
    TicketClosed,
    TicketCommented,
    TicketCustomerReplied,
    TicketLinked,
    TicketReopened,
    TicketResolved,
    TicketSnapshot,
    TicketStatus,
    TicketWaitingOnCustomer,
    utcnow,
)
from escalator.shared.outbox import emit
from escalator.shared.problems import Problem

SOURCE = "/escalator/ingest"
T = TypeVar("T", bound=TicketSnapshot)

#: The coarse status of the event contract for each lifecycle state.
STATUS = {
    "new": TicketStatus.open, "assigned": TicketStatus.open,
    "acknowledged": TicketStatus.acknowledged,
    "waiting_on_customer": TicketStatus.acknowledged,
    "resolved": TicketStatus.resolved, "closed": TicketStatus.closed,
}
STATES = tuple(STATUS)


def customer_of(ticket: Ticket) -> Customer:
    if ticket.customer_data:
        data = {**ticket.customer_data, "name": ticket.customer_name, "tier": ticket.customer_tier}
        return Customer.model_validate(data)
    return Customer(email=ticket.customer_email, name=ticket.customer_name,
                    tier=ticket.customer_tier)


#: Event fields that are ticket columns of the same name.
_SAME = ("external_id", "channel", "subject", "description", "category", "created_at",
         "updated_at", "severity_reason", "parent_id", "assignee_id")
_READ = (*_SAME, "id", "severity", "status", "language", "executive")


def snapshot(model: type[T], ticket: Ticket | Mapping[str, Any], *,
             customer: Customer | None = None, **extra: Any) -> T:
    """The event for ``ticket``: the row, or the column values of one about to be inserted
    in bulk (then with ``customer``, the one it was built from, already validated)."""
    if isinstance(ticket, Mapping):
        row = ticket
        assert customer is not None
    else:
        row = {name: getattr(ticket, name) for name in _READ}
        customer = customer or customer_of(ticket)
    return model(
        ticket_id=row["id"], severity=Severity(row["severity"]),
        status=TicketStatus(row["status"]), customer=customer,
        language=row["language"] or "en", executive=bool(row["executive"]),
        **{name: row.get(name) for name in _SAME}, **extra,
    )


def emit_snapshot(session: AsyncSession, model: type[TicketSnapshot], ticket: Ticket,
                  **extra: Any) -> None:
    emit(session, snapshot(model, ticket, **extra), source=SOURCE, time=ticket.updated_at)


def _move(ticket: Ticket, state: str, now: datetime) -> None:
    ticket.state, ticket.status, ticket.updated_at = state, STATUS[state].value, now


async def get(session: AsyncSession, ticket_id: str, *, lock: bool = False) -> Ticket:
    query = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        query = query.with_for_update()
    ticket = await session.scalar(query)
    if ticket is None:
        raise Problem(404, "Not Found", f"no ticket {ticket_id}")
    return ticket


async def _load(session: AsyncSession, ticket_id: str, ticket: Ticket | None) -> Ticket:
    return ticket if ticket is not None else await get(session, ticket_id, lock=True)


def conflict(ticket: Ticket, action: str) -> Problem:
    return Problem(409, "Conflict", f"cannot {action} a ticket that is {ticket.state}",
                   ticket_status=ticket.status, ticket_state=ticket.state)


async def acknowledge(session: AsyncSession, ticket_id: str, *,
                      ticket: Ticket | None = None) -> Ticket:
    ticket = await _load(session, ticket_id, ticket)
    if ticket.state == "acknowledged":
        return ticket
    if ticket.state not in ("new", "assigned"):
        raise conflict(ticket, "acknowledge")
    now = utcnow()
    _move(ticket, "acknowledged", now)
    ticket.acknowledged_at = now
    emit_snapshot(session, TicketAcknowledged, ticket)
    elapsed = (now - ticket.created_at).total_seconds()
    on_commit(session, lambda: metrics.FIRST_RESPONSE.labels(ticket.severity).observe(elapsed))
    return ticket


async def wait_on_customer(session: AsyncSession, ticket_id: str) -> Ticket:
    """The agent asked the customer something; SLA clocks pause until they answer."""
    ticket = await get(session, ticket_id, lock=True)
    if ticket.state == "waiting_on_customer":
        return ticket
    if ticket.state != "acknowledged":
        raise conflict(ticket, "wait on the customer for")
    _move(ticket, "waiting_on_customer", utcnow())
    emit_snapshot(session, TicketWaitingOnCustomer, ticket)
    return ticket


async def resolve(session: AsyncSession, ticket_id: str, *,
                  ticket: Ticket | None = None) -> Ticket:
    ticket = await _load(session, ticket_id, ticket)
    if ticket.state == "resolved":
        return ticket
    if ticket.state == "closed":
        raise conflict(ticket, "resolve")
    now = utcnow()
    _move(ticket, "resolved", now)
    ticket.resolved_at = now
    emit_snapshot(session, TicketResolved, ticket)
    return ticket


async def close(session: AsyncSession, ticket_id: str) -> Ticket:
    ticket = await get(session, ticket_id, lock=True)
    if ticket.state == "closed":
        return ticket
    now = utcnow()
    _move(ticket, "closed", now)
    ticket.closed_at = now
    emit_snapshot(session, TicketClosed, ticket)
    return ticket


def _resume_state(ticket: Ticket) -> str:
    if ticket.acknowledged_at is not None:
        return "acknowledged"
    return "assigned" if ticket.assignee_id else "new"


async def reopen(session: AsyncSession, ticket_id: str, *, ticket: Ticket | None = None,
                 reason: str | None = None) -> Ticket:
    """Back to work on a resolved ticket; on an active ticket a no-op; closed is final."""
    ticket = await _load(session, ticket_id, ticket)
    if ticket.state == "closed":
        raise conflict(ticket, "reopen")
    if ticket.state != "resolved":
        return ticket
    _move(ticket, _resume_state(ticket), utcnow())
    ticket.resolved_at = None
    ticket.reopen_count = (ticket.reopen_count or 0) + 1
    emit_snapshot(session, TicketReopened, ticket)
    return ticket


async def add_comment(session: AsyncSession, ticket_id: str, *, author_type: str, author: str,
                      public: bool, body: str, ticket: Ticket | None = None) -> TicketComment:
    """A comment; from the customer it is a reply that resumes work on the ticket.

    A customer reply to a waiting ticket moves it back to acknowledged (the SLA clock
    resumes); to a resolved ticket it reopens it. Nobody comments on a closed ticket.
    """
    ticket = await _load(session, ticket_id, ticket)
    if ticket.state == "closed":
        raise conflict(ticket, "comment on")
    if author_type == "customer" and not public:
        raise Problem(422, "Unprocessable Content", "a customer cannot write internal notes",
                      errors=[{"field": "body.public", "message": "must be true for customers",
                               "type": "value_error"}])
    now = utcnow()
    comment = TicketComment(id=str(uuid.uuid4()), ticket_id=ticket.id, author_type=author_type,
                            author=author[:320], public=public, body=body, created_at=now)
    session.add(comment)
    ticket.updated_at = now
    payload = Comment(id=comment.id, author_type=author_type, author=comment.author,  # type: ignore[arg-type]
                      public=public, body=body, created_at=now)
    if author_type != "customer":
        emit_snapshot(session, TicketCommented, ticket, comment=payload)
        return comment
    if ticket.state == "waiting_on_customer":
        _move(ticket, "acknowledged", now)
    emit_snapshot(session, TicketCustomerReplied, ticket, comment=payload)
    if ticket.state == "resolved":
        await reopen(session, ticket.id, ticket=ticket, reason="customer replied")
    return comment


async def link(session: AsyncSession, ticket_id: str, parent_id: str) -> Ticket:
    """Make ``ticket_id`` a child of the incident ``parent_id`` (one level deep)."""
    ticket = await get(session, ticket_id, lock=True)
    if ticket.parent_id == parent_id:
        return ticket
    if parent_id == ticket_id:
        raise Problem(422, "Unprocessable Content", "a ticket cannot be its own parent",
                      errors=[{"field": "body.parent_id", "message": "is the ticket itself",
                               "type": "value_error"}])
    parent = await session.get(Ticket, parent_id)
    if parent is None:
        raise Problem(422, "Unprocessable Content", f"no ticket {parent_id}",
                      errors=[{"field": "body.parent_id", "message": "no such ticket",
                               "type": "value_error"}])
    if parent.parent_id is not None:
        raise Problem(409, "Conflict", f"{parent_id} is itself linked to {parent.parent_id}; "
                      "link to the incident at the top", parent_id=parent.parent_id)
    has_children = await session.scalar(select(Ticket.id).where(Ticket.parent_id == ticket_id)
                                        .limit(1))
    if has_children is not None:
        raise Problem(409, "Conflict", f"{ticket_id} is the parent of other tickets")
    if ticket.state == "closed":
        raise conflict(ticket, "link")
    ticket.parent_id, ticket.updated_at = parent_id, utcnow()
    emit_snapshot(session, TicketLinked, ticket)
    return ticket


async def assigned(session: AsyncSession, holders: list[tuple[str, str | None]]) -> None:
    """Project a run of the router's ``ticket.assigned`` (ticket, holder or None, in
    order): who holds each ticket, and new -> assigned.

    One UPDATE per ticket, sent as one executemany, not an ORM read and flush per event
    (two round trips and the unit of work, for a projection nothing else in the
    consumer's transaction reads). Emits nothing: the router already announced it.
    """
    last: dict[str, tuple[str | None, bool]] = {}
    for ticket_id, holder in holders:
        held = last.get(ticket_id, (None, False))[1] or holder is not None
        last[ticket_id] = (holder, held)
    now = utcnow()
    await session.execute(_ASSIGN, [
        {"ticket": ticket_id, "holder": holder, "held": held, "now": now}
        for ticket_id, (holder, held) in last.items()])


_tickets = cast(Table, Ticket.__table__)
#: ``held``: some event of the run named a holder, which moves a new ticket to assigned.
_ASSIGN = (
    update(_tickets).where(_tickets.c.id == bindparam("ticket"))
    .values(
        assignee_id=bindparam("holder"),
        state=case((and_(_tickets.c.state == "new", bindparam("held", type_=Boolean())),
                    "assigned"), else_=_tickets.c.state),
        updated_at=case((_tickets.c.updated_at > bindparam("now", type_=UTCDateTime()),
                         _tickets.c.updated_at), else_=bindparam("now", type_=UTCDateTime())),
    )
)


async def comments(session: AsyncSession, ticket_id: str, *,
                   public_only: bool = False) -> list[TicketComment]:
    await get(session, ticket_id)
    query = select(TicketComment).where(TicketComment.ticket_id == ticket_id)
    if public_only:
        query = query.where(TicketComment.public.is_(True))
    return list(await session.scalars(query.order_by(TicketComment.created_at,
                                                     TicketComment.id)))
