"""The event contract between the services: CloudEvents 1.0 envelope and typed payloads.

Each payload model names its CloudEvents ``type`` and its logical topic once, here, so
producers and consumers cannot disagree. Payloads carry the state consumers need
(event-carried state transfer): no service calls another to interpret an event.
A payload that changes incompatibly gets a new type with a version suffix
(``ticket.created.v2``); consumers skip types they do not know.

The models are split by concept: ``base`` (topics, payload base), ``tickets``,
``routing``, ``outcomes`` (SLA, notifications, post-mortems), ``envelope`` (CloudEvents)
and ``registry``; import them from this package.
"""

from __future__ import annotations

from escalator.shared.events.base import (
    ALL_TOPICS,
    ASSIGNMENTS,
    DLQ,
    NOTIFICATIONS,
    POSTMORTEMS,
    SLA,
    TICKETS,
    EventData,
    Severity,
    TicketStatus,
    utcnow,
)
from escalator.shared.events.envelope import (
    CloudEvent,
    RawEnvelope,
    parse_event,
)
from escalator.shared.events.outcomes import (
    NotificationFailed,
    NotificationOutcome,
    NotificationSent,
    PostmortemCompleted,
    PostmortemCreated,
    SlaBreached,
    SlaClockEvent,
    SlaUpdateDue,
    SlaWarning,
    SurveySubmitted,
)
from escalator.shared.events.registry import (
    EVENT_TYPES,
)
from escalator.shared.events.routing import (
    Candidate,
    EscalationKind,
    Holder,
    TicketAssigned,
    TicketEscalated,
    TicketUnassignable,
)
from escalator.shared.events.tickets import (
    Comment,
    Contact,
    Customer,
    TicketAcknowledged,
    TicketClosed,
    TicketCommented,
    TicketCreated,
    TicketCustomerReplied,
    TicketEscalationRequested,
    TicketLinked,
    TicketReopened,
    TicketResolved,
    TicketSnapshot,
    TicketUpdated,
    TicketWaitingOnCustomer,
)

__all__ = [
    "ALL_TOPICS",
    "ASSIGNMENTS",
    "Candidate",
    "CloudEvent",
    "Comment",
    "Contact",
    "Customer",
    "DLQ",
    "EscalationKind",
    "EVENT_TYPES",
    "EventData",
    "Holder",
    "NotificationFailed",
    "NotificationOutcome",
    "NOTIFICATIONS",
    "NotificationSent",
    "parse_event",
    "PostmortemCompleted",
    "PostmortemCreated",
    "POSTMORTEMS",
    "RawEnvelope",
    "Severity",
    "SLA",
    "SlaBreached",
    "SlaClockEvent",
    "SlaUpdateDue",
    "SlaWarning",
    "SurveySubmitted",
    "TicketAcknowledged",
    "TicketAssigned",
    "TicketClosed",
    "TicketCommented",
    "TicketCreated",
    "TicketCustomerReplied",
    "TicketEscalated",
    "TicketEscalationRequested",
    "TicketLinked",
    "TicketReopened",
    "TicketResolved",
    "TICKETS",
    "TicketSnapshot",
    "TicketStatus",
    "TicketUnassignable",
    "TicketUpdated",
    "TicketWaitingOnCustomer",
    "utcnow",
]
