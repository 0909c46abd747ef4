"""Small factories for the events a ticket's story is made of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from escalator.shared.events import (
    CloudEvent,
    Customer,
    EscalationKind,
    EventData,
    Holder,
    NotificationFailed,
    NotificationSent,
    Severity,
    SlaBreached,
    TicketAcknowledged,
    TicketAssigned,
    TicketClosed,
    TicketCreated,
    TicketEscalated,
    TicketResolved,
    TicketSnapshot,
    TicketStatus,
)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ticket(model: type[TicketSnapshot], ticket_id: str, status: TicketStatus,
           **overrides: Any) -> TicketSnapshot:
    values: dict[str, Any] = {
        "ticket_id": ticket_id, "external_id": f"crm-{ticket_id}", "channel": "api",
        "subject": "Checkout fails", "description": "Every card payment fails.",
        "severity": Severity.high, "status": status,
        "customer": Customer(email="ops@acme.example", name="Acme Ops", tier="enterprise"),
        "created_at": T0, "updated_at": T0,
    }
    values.update(overrides)
    return model(**values)


def agent(name: str) -> Holder:
    return Holder(agent_id=name.lower(), name=name, email=f"{name.lower()}@desk.example",
                  team="support")


def assigned(ticket_id: str, level: int, who: str) -> TicketAssigned:
    return TicketAssigned(ticket_id=ticket_id, severity=Severity.high, path="default",
                          level=level, level_name=f"L{level + 1}", assignee=agent(who),
                          strategy="round_robin", reason="new ticket")


def escalated(ticket_id: str, to_level: int, kind: EscalationKind) -> TicketEscalated:
    return TicketEscalated(
        ticket_id=ticket_id, severity=Severity.high, path="default", kind=kind,
        trigger="sla_breach", from_level=to_level - 1, from_level_name=f"L{to_level}",
        to_level=to_level, to_level_name=f"L{to_level + 1}", from_assignee=agent("Ann"),
        to_assignee=agent("Bob"), reason="first response breached",
    )


def breached(ticket_id: str, clock: str = "first_response") -> SlaBreached:
    return SlaBreached(ticket_id=ticket_id, clock=clock, policy="high", target_seconds=60,
                       started_at=T0, due_at=at(60), fired_at=at(60), severity=Severity.high,
                       lateness_seconds=0.4)


def notified(ticket_id: str, delivery: str, *, failed: bool = False) -> EventData:
    values: dict[str, Any] = {
        "ticket_id": ticket_id, "delivery_id": delivery, "channel": "webhook",
        "recipient": "https://hooks.example/desk", "about_event_id": "e-1",
        "about_event_type": "ticket.assigned", "attempts": 1,
    }
    if failed:
        return NotificationFailed(**values, error="HTTP 503")
    return NotificationSent(**values)


def story(ticket_id: str) -> list[tuple[float, EventData]]:
    """A high ticket: assigned, breached, escalated, acknowledged, resolved, closed.

    Hand-computed measures: first response 90 s, close 400 s, 2 levels, one hierarchical
    escalation, one first-response breach, one reassignment, 1 notification sent, 1 failed.
    """
    return [
        (0, ticket(TicketCreated, ticket_id, TicketStatus.open)),
        (5, assigned(ticket_id, 0, "Ann")),
        (6, notified(ticket_id, "d1")),
        (60, breached(ticket_id)),
        (61, escalated(ticket_id, 1, EscalationKind.hierarchical)),
        (61, assigned(ticket_id, 1, "Bob")),
        (62, notified(ticket_id, "d2", failed=True)),
        (90, ticket(TicketAcknowledged, ticket_id, TicketStatus.acknowledged)),
        (300, ticket(TicketResolved, ticket_id, TicketStatus.resolved)),
    ]


def closed(ticket_id: str) -> TicketSnapshot:
    return ticket(TicketClosed, ticket_id, TicketStatus.closed, updated_at=at(400))


def envelope(data: EventData, seconds: float) -> CloudEvent[Any]:
    return CloudEvent.wrap(data, source="/test", time=at(seconds))


async def send(bootstrap: str, prefix: str, *events: CloudEvent[Any]) -> None:
    """Publish on each event's own topic, keyed by ticket id, in the given order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(f"{prefix}{event.topic}",
                                         event.model_dump_json().encode(),
                                         key=event.subject.encode())
    finally:
        await producer.stop()
