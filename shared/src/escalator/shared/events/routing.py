"""Events the router publishes on ``assignments``: who holds a ticket, and why."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from escalator.shared.events.base import ASSIGNMENTS, EventData, Severity


class Holder(BaseModel):
    """Who holds a ticket: enough for a notifier to reach them without asking the router."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    name: str
    email: str
    team: str
    role: str | None = None
    timezone: str | None = None
    language: str | None = None
    chat_handle: str | None = None


class Candidate(BaseModel):
    """One agent the router considered, and why it was or was not picked."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    name: str
    open_tickets: int
    picked: bool
    reason: str


class TicketAssigned(EventData):
    event_type = "ticket.assigned"
    topic = ASSIGNMENTS

    severity: Severity
    path: str
    level: int = Field(ge=0, description="0-based index into the escalation path")
    level_name: str
    assignee: Holder | None = Field(description="None when no agent was available")
    strategy: str
    reason: str
    rule: str | None = Field(default=None, description="The path rule that matched")
    candidates: list[Candidate] = []
    previous_assignee: Holder | None = None
    supervisor: Holder | None = None
    executive: bool = False
    ack_timeout_seconds: float | None = Field(
        default=None, description="How long the assignee has to acknowledge (sla-timer times it)"
    )


class EscalationKind(StrEnum):
    functional = "functional"
    hierarchical = "hierarchical"


class TicketEscalated(EventData):
    event_type = "ticket.escalated"
    topic = ASSIGNMENTS

    severity: Severity
    path: str
    kind: EscalationKind
    trigger: Literal[
        "sla_breach", "ack_timeout", "manual", "escalation_requested", "executive",
        "empty_level", "repeat",
    ]
    from_level: int
    from_level_name: str
    to_level: int
    to_level_name: str
    from_assignee: Holder | None
    to_assignee: Holder | None
    reason: str
    supervisor: Holder | None = None
    executive: bool = False


class TicketUnassignable(EventData):
    """Nobody at the level can take the ticket: it waits in the team queue."""

    event_type = "ticket.unassignable"
    topic = ASSIGNMENTS

    severity: Severity
    path: str
    level: int
    level_name: str
    team: str
    supervisor: Holder | None
    reason: str
