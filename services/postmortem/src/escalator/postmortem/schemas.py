"""Response bodies of the postmortem API."""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from escalator.shared.events import Severity


class PostmortemStatus(StrEnum):
    """Review states: draft -> in_review -> completed (in_review may go back to draft)."""

    draft = "draft"
    in_review = "in_review"
    completed = "completed"


class RootCause(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str = Field(description="One of the configured taxonomy "
                          "(``postmortem.root_causes``)")
    text: str = Field(min_length=1, max_length=10_000)


class Improvements(BaseModel):
    """What to change, by area; each free text or null."""

    model_config = ConfigDict(extra="forbid")

    product: str | None = Field(default=None, max_length=10_000)
    training: str | None = Field(default=None, max_length=10_000)
    documentation: str | None = Field(default=None, max_length=10_000)
    process: str | None = Field(default=None, max_length=10_000)


class PostmortemOut(BaseModel):
    id: str
    ticket_id: str
    status: PostmortemStatus
    created_at: datetime
    closed_at: datetime = Field(description="When the ticket was (last) closed.")
    subject: str
    severity: Severity
    category: str | None
    channel: str
    customer_name: str
    customer_email: str
    customer_tier: str
    executive: bool = False
    reasons: list[str] = Field(default_factory=list,
                               description="The escalation criteria the ticket met")
    summary: str | None = None
    customer_impact: str | None = None
    root_cause: RootCause | None = None
    went_well: str | None = None
    went_badly: str | None = None
    improvements: Improvements = Improvements()
    concessions: str | None = None
    no_action_items: bool = Field(default=False,
                                  description="The reviewer's explicit \"no action items\"")
    reviewer: str | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, row: Any) -> PostmortemOut:
        """From a ``Postmortem`` row, whose JSON columns are text."""
        values = {name: getattr(row, name) for name in cls.model_fields
                  if name not in {"reasons", "improvements", "root_cause"}}
        root = (RootCause.model_construct(category=row.root_cause_category,
                                          text=row.root_cause_text or "")
                if row.root_cause_category else None)
        return cls(**values, reasons=json.loads(row.reasons or "[]"),
                   improvements=Improvements(**json.loads(row.improvements or "{}")),
                   root_cause=root)


class PostmortemPage(BaseModel):
    items: list[PostmortemOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; "
                                    "null on the last page.")


class TimelineEntry(BaseModel):
    time: datetime
    type: str
    source: str
    event_id: str
    summary: str


class LevelHold(BaseModel):
    """One stretch of time during which one level (and assignee) held the ticket."""

    level: int = Field(description="0-based level in the escalation path")
    level_name: str
    assignee: str | None
    start: datetime
    end: datetime
    seconds: float


class Measures(BaseModel):
    """Figures derived from the timeline; null where the timeline lacks the events.

    Business-time figures count only the configured business hours
    (``postmortem.business_hours``) and are null when none are configured.
    """

    time_to_first_response_seconds: float | None = Field(
        description="ticket opened -> first ticket.acknowledged")
    time_to_first_response_business_seconds: float | None = None
    time_to_resolution_seconds: float | None = Field(
        default=None, description="ticket opened -> last ticket.resolved")
    time_to_resolution_business_seconds: float | None = None
    time_to_close_seconds: float | None = Field(description="ticket opened -> last ticket.closed")
    levels_reached: int = Field(description="Highest escalation level that held the ticket "
                                "(1 = first level); 0 if it was never assigned.")
    time_at_level_seconds: dict[str, float] = Field(
        default_factory=dict, description="Total time each level held it, by level name")
    level_holds: list[LevelHold] = Field(default_factory=list)
    escalations: dict[str, int] = Field(description="ticket.escalated count by kind")
    sla_breaches: dict[str, int] = Field(description="sla.breached count by clock")
    reassignments: int = Field(description="ticket.assigned events after the first")
    notifications_sent: int
    notifications_failed: int
    customer_replies: int = 0
    channels_used: list[str] = Field(default_factory=list,
                                     description="Channels the ticket's snapshots carried")
    notification_channels: list[str] = Field(default_factory=list)


class PostmortemPatch(BaseModel):
    """A review edit: only the fields sent change; null clears a text field."""

    model_config = ConfigDict(extra="forbid")

    status: PostmortemStatus | None = None
    summary: str | None = Field(default=None, max_length=10_000)
    customer_impact: str | None = Field(default=None, max_length=10_000)
    root_cause: RootCause | None = None
    went_well: str | None = Field(default=None, max_length=10_000)
    went_badly: str | None = Field(default=None, max_length=10_000)
    improvements: Improvements | None = None
    concessions: str | None = Field(default=None, max_length=10_000)
    no_action_items: bool | None = None


class ActionItemStatus(StrEnum):
    open = "open"
    in_progress = "in_progress"
    done = "done"
    wont_do = "wont_do"


#: Statuses in which an item past its due date is overdue.
UNFINISHED = (ActionItemStatus.open.value, ActionItemStatus.in_progress.value)


class ActionItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    owner: str = Field(min_length=1, max_length=200)
    due_date: date
    status: ActionItemStatus = ActionItemStatus.open


class ActionItemPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=500)
    owner: str | None = Field(default=None, min_length=1, max_length=200)
    due_date: date | None = None
    status: ActionItemStatus | None = None


class ActionItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    postmortem_id: str
    title: str
    owner: str
    due_date: date
    status: ActionItemStatus
    created_at: datetime
    updated_at: datetime
    overdue: bool = Field(default=False, description="Past due and not done or dropped")


class ChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str = Field(description="Name of the API key that made the change")
    target: str
    field: str
    old: Any
    new: Any


class SurveyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=5_000)


class SurveyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ticket_id: str
    score: int
    comment: str | None
    submitted_at: datetime


class PostmortemDetail(PostmortemOut):
    timeline: list[TimelineEntry] = Field(description="Ordered by event time, then event id.")
    measures: Measures
    action_items: list[ActionItemOut] = Field(default_factory=list)
    action_items_overdue: int = 0
    survey: SurveyOut | None = None
