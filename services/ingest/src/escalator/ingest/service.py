"""Turning one normalized inbound event into a ticket change. Never commits: the caller's
transaction also carries the events (outbox), so a ticket and its events appear together.

One conversation is one ticket: the channel's conversation id (or any id in an email
thread) finds the ticket. A follow-up from the customer is a ``ticket.customer_replied``
comment and reopens a resolved ticket; the API form restates the ticket instead
(``ticket.updated``); monitoring alerts open, update, acknowledge and resolve it.
A follow-up on a *closed* conversation opens a new ticket: closed is final.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.ingest import customers, lifecycle, metrics, rules
from escalator.ingest.config import IngestConfig
from escalator.ingest.inbound import Escalation, Inbound
from escalator.ingest.lifecycle import SOURCE, emit_snapshot, snapshot
from escalator.ingest.models import ThreadKey, Ticket
from escalator.shared.db import on_commit
from escalator.shared.events import (
    CloudEvent,
    Customer,
    TicketCreated,
    TicketEscalationRequested,
    TicketStatus,
    TicketUpdated,
    utcnow,
)
from escalator.shared.outbox import publish

__all__ = ["Outcome", "ingest", "snapshot"]


@dataclass(frozen=True)
class Outcome:
    ticket_id: str | None
    created: bool


async def ingest(session: AsyncSession, inbound: Inbound, config: IngestConfig) -> Outcome:
    """Open a ticket for a new conversation, or apply the event to the one it continues."""
    existing = await find_conversation(session, inbound)
    if existing is not None and existing.state == "closed":
        if inbound.mode in ("resolve", "acknowledge"):
            return Outcome(existing.id, False)
        inbound.external_id = f"{inbound.external_id}#{uuid.uuid4().hex[:8]}"
        existing = None
    if existing is None:
        if inbound.mode in ("resolve", "acknowledge"):
            return Outcome(None, False)  # nothing open for this alert: nothing to do
        ticket = await _create(session, inbound, config)
        if ticket is not None:
            return Outcome(ticket.id, True)
        existing = await find_conversation(session, inbound)  # lost a race to a twin
        assert existing is not None
    await _follow_up(session, existing, inbound, config)
    await _remember_refs(session, existing, inbound)
    return Outcome(existing.id, False)


async def find_conversation(session: AsyncSession, inbound: Inbound) -> Ticket | None:
    ticket = await session.scalar(select(Ticket).where(
        Ticket.channel == inbound.channel, Ticket.external_id == inbound.external_id))
    if ticket is None and inbound.thread_refs:
        ticket_id = await session.scalar(select(ThreadKey.ticket_id).where(
            ThreadKey.channel == inbound.channel, ThreadKey.key.in_(inbound.thread_refs)
        ).limit(1))
        if ticket_id is not None:
            ticket = await session.get(Ticket, ticket_id)
    return ticket


def _decide(inbound: Inbound, config: IngestConfig, tier: str) -> rules.Decision:
    facts = rules.Facts(channel=inbound.channel, text=f"{inbound.subject}\n{inbound.description}",
                        category=inbound.category or inbound.department,
                        recipient=inbound.recipient, tier=tier)
    return rules.decide(facts, inbound.severity, config.rules,
                        default=config.default_severity, builtin=config.builtin_keywords)


def new_ticket(inbound: Inbound, customer: Customer, account_id: str, config: IngestConfig,
               *, customer_data: dict[str, Any] | None = None,
               ) -> tuple[dict[str, Any], rules.Decision]:
    """The column values of the new ticket for ``inbound`` (a row for a bulk INSERT,
    or the arguments of ``Ticket``); ``customer_data``: ``customer`` dumped, if at hand."""
    decision = _decide(inbound, config, customer.tier)
    language = (inbound.language or customer.language or decision.language
                or rules.detect_language(inbound.description) or "en")
    now = utcnow()
    return {
        "id": str(uuid.uuid4()), "channel": inbound.channel, "external_id": inbound.external_id,
        "subject": inbound.subject, "description": inbound.description,
        "severity": decision.severity.value, "severity_reason": decision.reason,
        "status": TicketStatus.open.value, "state": "new",
        "category": decision.category or inbound.department, "department": inbound.department,
        "customer_email": str(customer.email), "customer_name": customer.name,
        "customer_tier": customer.tier, "customer_account_id": account_id,
        "customer_data": customer_data or customer.model_dump(mode="json"),
        "language": language[:20],
        "executive": decision.executive, "details": inbound.details or None,
        "created_at": now, "updated_at": now, "reopen_count": 0,
    }, decision


def announce_created(session: AsyncSession, ticket: Ticket | Mapping[str, Any],
                     inbound: Inbound, decision: rules.Decision,
                     customer: Customer) -> list[CloudEvent[Any]]:
    """The events of a new ticket (created, then any escalation it asks for), counted
    once the transaction commits; the caller queues them, so many new tickets can go
    into the outbox with one statement (``publish_many``).

    ``customer`` is the one the ticket was built from, so it is not validated again.
    """
    created = snapshot(TicketCreated, ticket, customer=customer)
    events: list[CloudEvent[Any]] = [
        CloudEvent.wrap(created, source=SOURCE, time=created.created_at)]
    counter = metrics.TICKETS_CREATED.labels(inbound.channel, created.severity.value)
    on_commit(session, counter.inc)
    if decision.executive:
        concern = next((c for c in decision.concerns if c in ("cancellation", "legal")), None)
        events.append(_escalation(ticket, Escalation(
            "executive", "rules", f"{concern or 'rule'}: {decision.reason}"), customer))
    if inbound.escalation is not None:
        events.append(_escalation(ticket, inbound.escalation, customer))
    return events


async def _create(session: AsyncSession, inbound: Inbound, config: IngestConfig) -> Ticket | None:
    customer, account_id = await customers.resolve(session, inbound.customer)
    values, decision = new_ticket(inbound, customer, account_id, config)
    ticket = Ticket(**values)
    fresh_refs = await _unknown_refs(session, inbound)
    try:
        async with session.begin_nested():
            session.add(ticket)
            await session.flush()  # the ticket row first: thread keys reference it
            for ref in fresh_refs:
                session.add(ThreadKey(channel=inbound.channel, key=ref, ticket_id=ticket.id))
    except IntegrityError:
        return None
    for event in announce_created(session, ticket, inbound, decision, customer):
        publish(session, event)
    return ticket


def _request(session: AsyncSession, ticket: Ticket | Mapping[str, Any], escalation: Escalation,
             customer: Customer | None = None) -> None:
    publish(session, _escalation(ticket, escalation, customer))


def _escalation(ticket: Ticket | Mapping[str, Any], escalation: Escalation,
                customer: Customer | None = None) -> CloudEvent[TicketEscalationRequested]:
    return CloudEvent.wrap(snapshot(
        TicketEscalationRequested, ticket, customer=customer, kind=escalation.kind,
        requested_by=escalation.requested_by, reason=escalation.reason[:1000]), source=SOURCE)


async def _follow_up(session: AsyncSession, ticket: Ticket, inbound: Inbound,
                     config: IngestConfig) -> None:
    if inbound.mode == "replace":
        await _restate(session, ticket, inbound, config)
    elif inbound.mode == "resolve":
        await lifecycle.resolve(session, ticket.id, ticket=ticket)
    elif inbound.mode == "acknowledge":
        if ticket.state in ("new", "assigned"):
            await lifecycle.acknowledge(session, ticket.id, ticket=ticket)
    elif inbound.mode == "alert":
        if ticket.state == "resolved":
            await lifecycle.reopen(session, ticket.id, ticket=ticket, reason="alert fired again")
        await _raise_severity(session, ticket, inbound, config)
    else:
        was_resolved = ticket.state == "resolved"
        await lifecycle.add_comment(
            session, ticket.id, author_type="customer",
            author=inbound.author or ticket.customer_email, public=True,
            body=inbound.description, ticket=ticket)
        decision = _decide(inbound, config, ticket.customer_tier)
        if decision.executive and not ticket.executive:
            ticket.executive = True
            _request(session, ticket, Escalation("executive", "rules", decision.reason))
        if was_resolved and "manager" in decision.concerns:
            _request(session, ticket, Escalation(
                "hierarchical", "customer", f"customer asked for a manager after resolution "
                f"({decision.reason})"))
        if inbound.escalation is not None:
            _request(session, ticket, inbound.escalation)


async def _raise_severity(session: AsyncSession, ticket: Ticket, inbound: Inbound,
                          config: IngestConfig) -> None:
    decision = _decide(inbound, config, ticket.customer_tier)
    if decision.severity.value != ticket.severity or inbound.description != ticket.description:
        ticket.severity, ticket.severity_reason = decision.severity.value, decision.reason
        ticket.description = inbound.description
        ticket.updated_at = utcnow()
        emit_snapshot(session, TicketUpdated, ticket)


async def _restate(session: AsyncSession, ticket: Ticket, inbound: Inbound,
                   config: IngestConfig) -> None:
    decision = _decide(inbound, config, inbound.customer.tier or ticket.customer_tier)
    fields = {
        "subject": inbound.subject, "description": inbound.description,
        "severity": decision.severity.value, "severity_reason": decision.reason,
        "category": decision.category,
        "customer_name": inbound.customer.name or ticket.customer_name,
        "customer_tier": inbound.customer.tier or ticket.customer_tier,
    }
    changed = False
    for name, value in fields.items():
        if getattr(ticket, name) != value:
            setattr(ticket, name, value)
            changed = True
    if changed:
        data = dict(ticket.customer_data or {})
        data.update(name=ticket.customer_name, tier=ticket.customer_tier)
        ticket.customer_data = data
        ticket.updated_at = utcnow()
        emit_snapshot(session, TicketUpdated, ticket)
    if decision.executive and not ticket.executive:
        ticket.executive = True
        _request(session, ticket, Escalation("executive", "rules", decision.reason))


async def _unknown_refs(session: AsyncSession, inbound: Inbound) -> list[str]:
    """The conversation ids not yet mapped to any ticket (earlier ones keep their ticket)."""
    refs = list(dict.fromkeys(ref[:500] for ref in inbound.thread_refs))
    if not refs:
        return []
    known = set(await session.scalars(select(ThreadKey.key).where(
        ThreadKey.channel == inbound.channel, ThreadKey.key.in_(refs))))
    return [ref for ref in refs if ref not in known]


async def _remember_refs(session: AsyncSession, ticket: Ticket, inbound: Inbound) -> None:
    for ref in await _unknown_refs(session, inbound):
        session.add(ThreadKey(channel=inbound.channel, key=ref, ticket_id=ticket.id))

