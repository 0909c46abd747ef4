"""What every event shares: topics, the payload base class, severity and status."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

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
