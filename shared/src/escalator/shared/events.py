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


class Contact(BaseModel):
    """A person a notifier may need to reach, carried in the event (no lookups)."""

    model_config = ConfigDict(frozen=True)

    name: str
    email: str
    phone: str | None = None
    timezone: str | None = Field(default=None, description="IANA zone, for working hours")
    language: str | None = None


class Customer(BaseModel):
    model_config = ConfigDict(frozen=True)

    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    tier: str = "standard"
    account_id: str | None = None
    phone: str | None = None
    language: str | None = Field(default=None, description="BCP 47 tag, e.g. pt, el")
    csm: Contact | None = Field(default=None, description="Customer success manager")
    account_executive: Contact | None = None
    executive_sponsor: Contact | None = Field(
        default=None, description="Set for accounts in the executive sponsorship program"
    )


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
    language: str = "en"
    executive: bool = Field(default=False, description="Cancellation or legal threat")
    severity_reason: str | None = Field(
        default=None, description="The explicit value or the rule that set the severity"
    )
    parent_id: str | None = Field(default=None, description="Parent incident, when linked")
    assignee_id: str | None = None


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


class Comment(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    author_type: Literal["agent", "customer", "system"]
    author: str
    public: bool
    body: str
    created_at: AwareDatetime


class TicketCommented(TicketSnapshot):
    event_type = "ticket.commented"
    topic = TICKETS

    comment: Comment


class TicketCustomerReplied(TicketSnapshot):
    """The customer wrote on the ticket (a thread follow-up or a portal reply)."""

    event_type = "ticket.customer_replied"
    topic = TICKETS

    comment: Comment


class TicketWaitingOnCustomer(TicketSnapshot):
    event_type = "ticket.waiting_on_customer"
    topic = TICKETS


class TicketReopened(TicketSnapshot):
    event_type = "ticket.reopened"
    topic = TICKETS


class TicketLinked(TicketSnapshot):
    """The ticket became a child of the incident ``parent_id``."""

    event_type = "ticket.linked"
    topic = TICKETS


class TicketEscalationRequested(TicketSnapshot):
    """Someone asks for the ticket to move up: a customer wanting a manager, a chatbot
    handing off to a human, or a cancellation/legal threat (``kind="executive"``)."""

    event_type = "ticket.escalation_requested"
    topic = TICKETS

    kind: Literal["hierarchical", "executive"]
    requested_by: Literal["customer", "chatbot", "agent", "rules"]
    reason: str


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


class SlaClockEvent(EventData):
    clock: str = Field(
        description="first_response, next_update, resolution or acknowledgement"
    )
    policy: str
    target_seconds: float
    started_at: AwareDatetime
    due_at: AwareDatetime
    fired_at: AwareDatetime
    severity: Severity
    level: int | None = Field(default=None, description="Escalation level when it fired")


class SlaWarning(SlaClockEvent):
    event_type = "sla.warning"
    topic = SLA


class SlaBreached(SlaClockEvent):
    event_type = "sla.breached"
    topic = SLA

    lateness_seconds: float


class SlaUpdateDue(SlaClockEvent):
    """The customer is due a status update (the repeating next-update clock)."""

    event_type = "sla.update_due"
    topic = SLA


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


class PostmortemCompleted(EventData):
    event_type = "postmortem.completed"
    topic = POSTMORTEMS

    postmortem_id: str
    reviewer: str
    root_cause_category: str | None


class SurveySubmitted(EventData):
    event_type = "survey.submitted"
    topic = POSTMORTEMS

    score: int = Field(ge=1, le=5)
    comment: str | None = None


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_type: cls
    for cls in (
        TicketCreated,
        TicketUpdated,
        TicketAcknowledged,
        TicketResolved,
        TicketClosed,
        TicketCommented,
        TicketCustomerReplied,
        TicketWaitingOnCustomer,
        TicketReopened,
        TicketLinked,
        TicketEscalationRequested,
        TicketAssigned,
        TicketEscalated,
        TicketUnassignable,
        SlaWarning,
        SlaBreached,
        SlaUpdateDue,
        NotificationSent,
        NotificationFailed,
        PostmortemCreated,
        PostmortemCompleted,
        SurveySubmitted,
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
