"""Response bodies of the postmortem API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from escalator.shared.events import Severity


class PostmortemStatus(StrEnum):
    """Review states; the review workflow adds ``in_review`` and ``completed``."""

    draft = "draft"


class PostmortemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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


class Measures(BaseModel):
    """Figures derived from the timeline; null where the timeline lacks the events."""

    time_to_first_response_seconds: float | None = Field(
        description="ticket opened -> first ticket.acknowledged")
    time_to_close_seconds: float | None = Field(description="ticket opened -> last ticket.closed")
    levels_reached: int = Field(description="Highest escalation level that held the ticket "
                                "(1 = first level); 0 if it was never assigned.")
    escalations: dict[str, int] = Field(description="ticket.escalated count by kind")
    sla_breaches: dict[str, int] = Field(description="sla.breached count by clock")
    reassignments: int = Field(description="ticket.assigned events after the first")
    notifications_sent: int
    notifications_failed: int


class PostmortemDetail(PostmortemOut):
    timeline: list[TimelineEntry] = Field(description="Ordered by event time, then event id.")
    measures: Measures
