"""Small builders for events used across the shared-mechanism tests."""

from __future__ import annotations

import uuid
from typing import Any

from escalator.shared.events import CloudEvent, Customer, TicketCreated, utcnow


def ticket_created(ticket_id: str | None = None, **overrides: Any) -> TicketCreated:
    now = utcnow()
    values: dict[str, Any] = {
        "ticket_id": ticket_id or str(uuid.uuid4()),
        "external_id": "ext-1",
        "channel": "api",
        "subject": "Checkout fails",
        "description": "Card payments fail.",
        "severity": "high",
        "status": "open",
        "customer": Customer(email="ops@acme.example", name="Acme Ops"),
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    return TicketCreated(**values)


def envelope(data: TicketCreated) -> CloudEvent[TicketCreated]:
    return CloudEvent.wrap(data, source="/test")


def wire(event: CloudEvent[Any]) -> tuple[bytes, bytes]:
    """(value, key) as a producer would put them on the topic."""
    return event.model_dump_json().encode(), event.subject.encode()
