"""The event contract between the services: CloudEvents 1.0 envelope and typed payloads.

Each payload model names its CloudEvents ``type`` and its logical topic once, here, so
producers and consumers cannot disagree. Payloads carry the state consumers need
(event-carried state transfer): no service calls another to interpret an event.
A payload that changes incompatibly gets a new type with a version suffix
(``ticket.created.v2``); consumers skip types they do not know.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

TICKETS = "tickets"
ASSIGNMENTS = "assignments"
SLA = "sla"
NOTIFICATIONS = "notifications"
POSTMORTEMS = "postmortems"
DLQ = "dlq"
ALL_TOPICS = (TICKETS, ASSIGNMENTS, SLA, NOTIFICATIONS, POSTMORTEMS, DLQ)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Severity(StrEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


class TicketStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"
    closed = "closed"


class EventData(BaseModel):
    """Base of every payload; ``event_type`` and ``topic`` are fixed per subclass."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    topic: ClassVar[str]
    ticket_id: str


class Customer(BaseModel):
    model_config = ConfigDict(frozen=True)

    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    tier: str = "standard"


class TicketSnapshot(EventData):
    """The ticket as ingest holds it after the change the event reports."""

    external_id: str
    channel: str
    subject: str
    description: str
    severity: Severity
    status: TicketStatus
    category: str | None = None
    customer: Customer
    created_at: AwareDatetime
    updated_at: AwareDatetime


class TicketCreated(TicketSnapshot):
    event_type = "ticket.created"
    topic = TICKETS


class TicketUpdated(TicketSnapshot):
    event_type = "ticket.updated"
    topic = TICKETS


class TicketAcknowledged(TicketSnapshot):
    event_type = "ticket.acknowledged"
    topic = TICKETS


class TicketResolved(TicketSnapshot):
    event_type = "ticket.resolved"
    topic = TICKETS


class TicketClosed(TicketSnapshot):
    event_type = "ticket.closed"
    topic = TICKETS


class Holder(BaseModel):
    """Who holds a ticket: enough for a notifier to reach them without asking the router."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    name: str
    email: str
    team: str


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


class EscalationKind(StrEnum):
    functional = "functional"
    hierarchical = "hierarchical"


class TicketEscalated(EventData):
    event_type = "ticket.escalated"
    topic = ASSIGNMENTS

    severity: Severity
    path: str
    kind: EscalationKind
    trigger: Literal["sla_breach", "manual"]
    from_level: int
    from_level_name: str
    to_level: int
    to_level_name: str
    from_assignee: Holder | None
    to_assignee: Holder | None
    reason: str


class SlaClockEvent(EventData):
    clock: str
    policy: str
    target_seconds: float
    started_at: AwareDatetime
    due_at: AwareDatetime
    fired_at: AwareDatetime
    severity: Severity


class SlaWarning(SlaClockEvent):
    event_type = "sla.warning"
    topic = SLA


class SlaBreached(SlaClockEvent):
    event_type = "sla.breached"
    topic = SLA

    lateness_seconds: float


class NotificationOutcome(EventData):
    delivery_id: str
    channel: str
    recipient: str
    about_event_id: str
    about_event_type: str
    attempts: int


class NotificationSent(NotificationOutcome):
    event_type = "notification.sent"
    topic = NOTIFICATIONS


class NotificationFailed(NotificationOutcome):
    event_type = "notification.failed"
    topic = NOTIFICATIONS

    error: str


class PostmortemCreated(EventData):
    event_type = "postmortem.created"
    topic = POSTMORTEMS

    postmortem_id: str
    timeline_events: int


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_type: cls
    for cls in (
        TicketCreated,
        TicketUpdated,
        TicketAcknowledged,
        TicketResolved,
        TicketClosed,
        TicketAssigned,
        TicketEscalated,
        SlaWarning,
        SlaBreached,
        NotificationSent,
        NotificationFailed,
        PostmortemCreated,
    )
}

D = TypeVar("D", bound=EventData)


class CloudEvent(BaseModel, Generic[D]):
    """A CloudEvents 1.0 envelope in JSON structured mode; ``subject`` is the ticket id."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    subject: str
    time: AwareDatetime = Field(default_factory=utcnow)
    datacontenttype: Literal["application/json"] = "application/json"
    data: D

    @classmethod
    def wrap(cls, data: D, *, source: str, time: datetime | None = None) -> CloudEvent[D]:
        return CloudEvent[D](
            source=source,
            type=data.event_type,
            subject=data.ticket_id,
            time=time or utcnow(),
            data=data,
        )

    @property
    def topic(self) -> str:
        return self.data.topic


class RawEnvelope(BaseModel):
    """The envelope before its payload is typed, so unknown types can be skipped cheaply."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str
    type: str
    subject: str | None = None
    time: AwareDatetime
    data: dict[str, Any]


def parse_event(raw: bytes) -> CloudEvent[Any] | None:
    """Decode a message value into a typed event.

    Returns None for a well-formed envelope of a type this build does not know (forward
    compatibility); raises ``pydantic.ValidationError``/``ValueError`` for anything that
    is not a valid CloudEvent of a known type, which the consumer dead-letters.
    """
    envelope = RawEnvelope.model_validate_json(raw)
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        return None
    data = model.model_validate(envelope.data)
    return CloudEvent[model](  # type: ignore[valid-type]
        id=envelope.id,
        source=envelope.source,
        type=envelope.type,
        subject=envelope.subject or data.ticket_id,
        time=envelope.time,
        data=data,
    )
