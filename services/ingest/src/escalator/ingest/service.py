"""Ticket operations. They never commit: the caller's transaction also carries the events.

Lifecycle: open -> acknowledged -> resolved -> closed; close is allowed from any state
(a help desk closes duplicates and spam unanswered). Repeating a transition the ticket
already made is a no-op that emits nothing, so client retries are harmless.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.ingest import metrics
from escalator.ingest.models import Ticket
from escalator.ingest.schemas import ApiChannelEvent
from escalator.shared.events import (
    Customer,
    Severity,
    TicketAcknowledged,
    TicketClosed,
    TicketCreated,
    TicketResolved,
    TicketSnapshot,
    TicketStatus,
    TicketUpdated,
    utcnow,
)
from escalator.shared.outbox import emit
from escalator.shared.pagination import newest_first
from escalator.shared.problems import Problem

SOURCE = "/escalator/ingest"
T = TypeVar("T", bound=TicketSnapshot)


def snapshot(model: type[T], ticket: Ticket) -> T:
    return model(
        ticket_id=ticket.id,
        external_id=ticket.external_id,
        channel=ticket.channel,
        subject=ticket.subject,
        description=ticket.description,
        severity=Severity(ticket.severity),
        status=TicketStatus(ticket.status),
        category=ticket.category,
        customer=Customer(email=ticket.customer_email, name=ticket.customer_name,
                          tier=ticket.customer_tier),
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
    )


async def ingest(
    session: AsyncSession, channel: str, event: ApiChannelEvent
) -> tuple[Ticket, bool]:
    """Open a ticket for a new conversation, or update the one it continues."""
    existing = await _by_external_id(session, channel, event.external_id)
    if existing is None:
        now = utcnow()
        ticket = Ticket(
            id=str(uuid.uuid4()),
            channel=channel,
            external_id=event.external_id,
            subject=event.subject,
            description=event.description,
            severity=event.severity.value,
            status=TicketStatus.open.value,
            category=event.category,
            customer_email=str(event.customer.email),
            customer_name=event.customer.name,
            customer_tier=event.customer.tier,
            created_at=now,
            updated_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(ticket)
        except IntegrityError:
            # A concurrent request opened the same conversation first: update that one.
            existing = await _by_external_id(session, channel, event.external_id)
            if existing is None:
                raise
        else:
            emit(session, snapshot(TicketCreated, ticket), source=SOURCE, time=now)
            metrics.TICKETS_CREATED.labels(channel, ticket.severity).inc()
            return ticket, True
    assert existing is not None
    changed = _apply_update(existing, event)
    if changed:
        existing.updated_at = utcnow()
        emit(session, snapshot(TicketUpdated, existing), source=SOURCE, time=existing.updated_at)
    return existing, False


def _apply_update(ticket: Ticket, event: ApiChannelEvent) -> bool:
    fields = {
        "subject": event.subject,
        "description": event.description,
        "severity": event.severity.value,
        "category": event.category,
        "customer_name": event.customer.name,
        "customer_tier": event.customer.tier,
    }
    changed = False
    for name, value in fields.items():
        if getattr(ticket, name) != value:
            setattr(ticket, name, value)
            changed = True
    return changed


async def _by_external_id(session: AsyncSession, channel: str, external_id: str) -> Ticket | None:
    return await session.scalar(
        select(Ticket).where(Ticket.channel == channel, Ticket.external_id == external_id)
    )


async def get(session: AsyncSession, ticket_id: str, *, lock: bool = False) -> Ticket:
    query = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        query = query.with_for_update()
    ticket = await session.scalar(query)
    if ticket is None:
        raise Problem(404, "Not Found", f"no ticket {ticket_id}")
    return ticket


async def acknowledge(session: AsyncSession, ticket_id: str) -> Ticket:
    ticket = await get(session, ticket_id, lock=True)
    if ticket.status != TicketStatus.open:
        if ticket.acknowledged_at is not None:
            return ticket
        raise _conflict(ticket, "acknowledge")
    now = utcnow()
    ticket.status, ticket.acknowledged_at, ticket.updated_at = TicketStatus.acknowledged, now, now
    emit(session, snapshot(TicketAcknowledged, ticket), source=SOURCE, time=now)
    return ticket


async def resolve(session: AsyncSession, ticket_id: str) -> Ticket:
    ticket = await get(session, ticket_id, lock=True)
    if ticket.status == TicketStatus.resolved:
        return ticket
    if ticket.status == TicketStatus.closed:
        raise _conflict(ticket, "resolve")
    now = utcnow()
    ticket.status, ticket.resolved_at, ticket.updated_at = TicketStatus.resolved, now, now
    emit(session, snapshot(TicketResolved, ticket), source=SOURCE, time=now)
    return ticket


async def close(session: AsyncSession, ticket_id: str) -> Ticket:
    ticket = await get(session, ticket_id, lock=True)
    if ticket.status == TicketStatus.closed:
        return ticket
    now = utcnow()
    ticket.status, ticket.closed_at, ticket.updated_at = TicketStatus.closed, now, now
    emit(session, snapshot(TicketClosed, ticket), source=SOURCE, time=now)
    return ticket


def _conflict(ticket: Ticket, action: str) -> Problem:
    return Problem(409, "Conflict", f"cannot {action} a ticket that is {ticket.status}",
                   ticket_status=ticket.status)


async def list_tickets(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    status: TicketStatus | None,
    severity: Severity | None,
    channel: str | None,
    customer_email: str | None,
) -> tuple[list[Ticket], str | None]:
    query = select(Ticket)
    for column, value in (
        (Ticket.status, status),
        (Ticket.severity, severity),
        (Ticket.channel, channel),
        (Ticket.customer_email, customer_email),
    ):
        if value is not None:
            query = query.where(column == value)
    return await newest_first(session, query, created=Ticket.created_at, key=Ticket.id,
                              limit=limit, cursor=cursor)
