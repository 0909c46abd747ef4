"""Ingest's own figures: tickets opened, open tickets by severity, time to first response."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.ingest.models import Ticket
from escalator.shared.events import Severity

TICKETS_CREATED = Counter(
    "escalator_tickets_created_total",
    "Tickets opened, by channel and severity.",
    ["channel", "severity"],
)
OPEN_TICKETS = Gauge(
    "escalator_open_tickets",
    "Tickets neither resolved nor closed, by severity (counted from the database).",
    ["severity"],
)
FIRST_RESPONSE = Histogram(
    "escalator_first_response_seconds",
    "Calendar time from a ticket's creation to its acknowledgement, by severity.",
    ["severity"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200),
)

GROUP_COMMIT_EVENTS = Histogram(
    "escalator_ingest_group_commit_messages",
    "Single-event requests stored per group-commit transaction (1 = no concurrency).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)

WEBHOOK_REFUSED = Counter(
    "escalator_ingest_webhook_refused_total",
    "Requests to signed channels refused, by channel and reason (signature: missing, "
    "malformed, wrong or expired; replayed: the same signed request again).",
    ["channel", "reason"],
)


#: Open tickets by severity: the partial index ``ix_tickets_open_severity`` holds exactly
#: these, so the count reads the open tickets only, however many were closed before.
OPEN = (select(Ticket.severity, func.count())
        .where(Ticket.state.not_in(("resolved", "closed")))
        .group_by(Ticket.severity))


async def count_open_tickets(session: AsyncSession) -> None:
    """Refresh ``escalator_open_tickets`` from the tickets table."""
    rows = (await session.execute(OPEN)).all()
    counts = {severity: int(n) for severity, n in rows}
    for severity in Severity:
        OPEN_TICKETS.labels(severity.value).set(counts.get(severity.value, 0))
