"""Ingest's own figures: tickets opened, open tickets by severity, time to first response."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select

from escalator.ingest.models import Ticket
from escalator.shared.app import Runtime
from escalator.shared.consumer import is_infrastructure_error
from escalator.shared.events import Severity

log = logging.getLogger(__name__)

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


async def count_open_tickets(runtime: Runtime, interval: float = 15.0) -> None:
    """Refresh ``escalator_open_tickets`` from the database, the one source of truth, so
    every replica reports the same figure (dashboards take the max, not the sum)."""
    while True:
        try:
            async with runtime.sessionmaker() as session:
                rows = (await session.execute(
                    select(Ticket.severity, func.count())
                    .where(Ticket.state.not_in(("resolved", "closed")))
                    .group_by(Ticket.severity)
                )).all()
            counts = {severity: int(n) for severity, n in rows}
            for severity in Severity:
                OPEN_TICKETS.labels(severity.value).set(counts.get(severity.value, 0))
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            log.warning("cannot count open tickets: %s", exc)
        await asyncio.sleep(interval)
