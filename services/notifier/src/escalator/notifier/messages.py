"""What a webhook receives about an event: the envelope plus one human-readable line.

The line is meant for chat tools and logs; templates per language and channel replace
it later (issue 6) without changing the body's shape.
"""

from __future__ import annotations

import json
from typing import Any

from escalator.shared.events import CloudEvent, Holder, SlaBreached, TicketAssigned, TicketEscalated


def _holder(holder: Holder | None) -> str:
    return holder.name if holder is not None else "nobody (no agent available)"


def summary(event: CloudEvent[Any]) -> str:
    data = event.data
    if isinstance(data, TicketEscalated):
        return (f"Ticket {data.ticket_id} escalated from {data.from_level_name} to "
                f"{data.to_level_name} ({data.trigger}); now held by {_holder(data.to_assignee)}")
    if isinstance(data, TicketAssigned):
        return (f"Ticket {data.ticket_id} ({data.severity}) assigned at {data.level_name} "
                f"to {_holder(data.assignee)}")
    if isinstance(data, SlaBreached):
        return (f"Ticket {data.ticket_id} ({data.severity}) breached its {data.clock} SLA "
                f"(policy {data.policy}) by {data.lateness_seconds:.0f}s")
    return f"Ticket {data.ticket_id}: {event.type}"


def webhook_body(delivery_id: str, event: CloudEvent[Any]) -> str:
    """The exact bytes POSTed (and signed), stored so every retry sends the same body."""
    return json.dumps(
        {"delivery_id": delivery_id, "event": event.model_dump(mode="json"),
         "text": summary(event)},
        separators=(",", ":"),
    )
