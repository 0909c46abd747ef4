"""SLA clock, notification and post-mortem events."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from escalator.shared.events.base import NOTIFICATIONS, POSTMORTEMS, SLA, EventData, Severity


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
