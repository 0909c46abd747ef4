"""Every event type this build knows, by its CloudEvents ``type``."""

from __future__ import annotations

from escalator.shared.events.base import EventData
from escalator.shared.events.outcomes import (
    NotificationFailed,
    NotificationSent,
    PostmortemCompleted,
    PostmortemCreated,
    SlaBreached,
    SlaUpdateDue,
    SlaWarning,
    SurveySubmitted,
)
from escalator.shared.events.routing import TicketAssigned, TicketEscalated, TicketUnassignable
from escalator.shared.events.tickets import (
    TicketAcknowledged,
    TicketClosed,
    TicketCommented,
    TicketCreated,
    TicketCustomerReplied,
    TicketEscalationRequested,
    TicketLinked,
    TicketReopened,
    TicketResolved,
    TicketUpdated,
    TicketWaitingOnCustomer,
)

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
