"""Postmortem's own figures."""

from __future__ import annotations

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.postmortem.models import Postmortem

POSTMORTEMS_CREATED = Counter(
    "escalator_postmortems_created_total",
    "Post-mortems opened for closed tickets, by severity.",
    ["severity"],
)
TIMELINE_EVENTS = Counter(
    "escalator_timeline_events_total",
    "Events stored in ticket timelines (duplicates not counted), by event type.",
    ["type"],
)
CLOSED_WITHOUT_POSTMORTEM = Counter(
    "escalator_closed_without_postmortem_total",
    "Closes of tickets that met no escalation criterion (no post-mortem opened).",
)
PENDING_REVIEW = Gauge(
    "escalator_postmortems_pending_review",
    "Post-mortems not completed yet, by review status (draft, in_review).",
    ["status"],
)


#: Post-mortems still under review, by status: read through ``ix_postmortems_status``,
#: so completed ones (nearly all of them, in time) are never counted.
PENDING = (select(Postmortem.status, func.count())
           .where(Postmortem.status.in_(("draft", "in_review")))
           .group_by(Postmortem.status))


async def count_pending_reviews(session: AsyncSession) -> None:
    """Refresh ``escalator_postmortems_pending_review`` from the postmortems table."""
    rows = dict((await session.execute(PENDING)).all())
    for status in ("draft", "in_review"):
        PENDING_REVIEW.labels(status).set(int(rows.get(status, 0)))
