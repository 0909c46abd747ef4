"""What the router does with each event it consumes.

The shared runner gives each event once (inbox) inside a transaction; these handlers
only translate the typed event into a routing decision in ``service``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router import intake, service
from escalator.router.service import Move
from escalator.shared.consumer import Handlers
from escalator.shared.events import (
    CloudEvent,
    SlaBreached,
    TicketClosed,
    TicketCreated,
    TicketEscalationRequested,
    TicketReopened,
    TicketResolved,
    TicketUpdated,
)

handlers = Handlers()


@handlers.on_batch(TicketCreated)
async def on_created(events: list[CloudEvent[TicketCreated]], *, session: AsyncSession) -> None:
    """A run of new tickets is routed together: a few statements for the whole run."""
    await intake.route_new_tickets(session, events)


@handlers.on(TicketUpdated)
async def on_updated(event: CloudEvent[TicketUpdated], *, session: AsyncSession) -> None:
    await service.update_severity(session, event.data.ticket_id, event.data.severity)


@handlers.on(SlaBreached)
async def on_breached(event: CloudEvent[SlaBreached], *, session: AsyncSession) -> None:
    """Any clock's breach moves the ticket up; the acknowledgement clock is the level's
    ack timeout running out (the sla-timer times it from ``ack_timeout_seconds``)."""
    breach = event.data
    trigger = "ack_timeout" if breach.clock == "acknowledgement" else "sla_breach"
    why = (f"{breach.clock} SLA breached (policy {breach.policy}, "
           f"{breach.lateness_seconds:.0f}s late)")
    if trigger == "ack_timeout":
        why = f"not acknowledged within {breach.target_seconds:.0f}s"
    await service.escalate(session, breach.ticket_id, Move(trigger, why), keep=True)


@handlers.on(TicketEscalationRequested)
async def on_escalation_requested(
    event: CloudEvent[TicketEscalationRequested], *, session: AsyncSession
) -> None:
    """A customer asks for a manager (one level up), or a cancellation/legal threat goes
    straight to the executive level with the account's executive sponsor brought in."""
    asked = event.data
    why = f"{asked.requested_by} asked for {asked.kind} escalation: {asked.reason}"
    if asked.kind == "hierarchical":
        await service.escalate(session, asked.ticket_id,
                               Move("escalation_requested", why, service.HIERARCHICAL), keep=True)
        return
    sponsor = asked.customer.executive_sponsor
    if sponsor is not None:
        why += f"; executive sponsor {sponsor.name} <{sponsor.email}> brought in"
    await service.escalate(session, asked.ticket_id,
                           Move("executive", why, service.HIERARCHICAL), executive=True,
                           sponsor_email=sponsor.email.lower() if sponsor else None, keep=True)


@handlers.on(TicketResolved, TicketClosed)
async def on_finished(
    event: CloudEvent[TicketResolved] | CloudEvent[TicketClosed], *, session: AsyncSession
) -> None:
    await service.adjust_load(session, event.data.ticket_id, reopen=False)


@handlers.on(TicketReopened)
async def on_reopened(event: CloudEvent[TicketReopened], *, session: AsyncSession) -> None:
    await service.adjust_load(session, event.data.ticket_id, reopen=True)
