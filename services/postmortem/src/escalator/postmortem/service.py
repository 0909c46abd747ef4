"""Timeline collection and post-mortem records. Nothing here commits: the consumer's (or
the request's) transaction owns the change and the outbox row that announces it.

Every closed ticket gets a post-mortem for now; the criteria for "was an escalation"
arrive with the review workflow. A ticket that is reopened and closed again keeps its
one post-mortem, whose ``closed_at`` follows the latest close.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.postmortem import metrics
from escalator.postmortem.models import Postmortem, TimelineEvent
from escalator.postmortem.schemas import (
    PostmortemDetail,
    PostmortemOut,
    PostmortemStatus,
    TimelineEntry,
)
from escalator.postmortem.timeline import Entry, measure, summarize
from escalator.shared.db import on_commit
from escalator.shared.events import POSTMORTEMS, CloudEvent, PostmortemCreated, TicketClosed, utcnow
from escalator.shared.outbox import emit
from escalator.shared.pagination import newest_first
from escalator.shared.problems import Problem

SOURCE = "/escalator/postmortem"


async def record_event(session: AsyncSession, event: CloudEvent[Any]) -> bool:
    """Store ``event`` in its ticket's timeline; False if that event id is already there.

    The shared inbox already drops redeliveries; the conflict guard keeps the timeline
    right even when an event is replayed under another consumer group or inbox reset.
    Our own ``postmortem.*`` events are not part of the ticket's story and are skipped.
    """
    if event.topic == POSTMORTEMS:
        return False
    values = {
        "event_id": event.id,
        "ticket_id": event.subject,
        "type": event.type,
        "source": event.source,
        # SQLite stores wall-clock text: normalise so every row sorts on one clock.
        "time": event.time.astimezone(UTC),
        "topic": event.topic,
        "data": event.data.model_dump_json(),
        "received_at": utcnow(),
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    result = await session.execute(
        dialect.insert(TimelineEvent).values(**values).on_conflict_do_nothing(
            index_elements=["event_id"]
        )
    )
    stored = bool(result.rowcount)  # type: ignore[attr-defined]
    if stored:
        on_commit(session, metrics.TIMELINE_EVENTS.labels(event.type).inc)
    return stored


async def open_for_closed_ticket(
    session: AsyncSession, event: CloudEvent[TicketClosed]
) -> Postmortem:
    """Create the ticket's post-mortem (draft) and announce it, or follow a later close."""
    closed_at = event.time.astimezone(UTC)
    ticket = event.data
    existing = await _by_ticket(session, ticket.ticket_id)
    if existing is None:
        postmortem = Postmortem(
            id=str(uuid.uuid4()),
            ticket_id=ticket.ticket_id,
            status=PostmortemStatus.draft.value,
            created_at=utcnow(),
            closed_at=closed_at,
            subject=ticket.subject,
            severity=ticket.severity.value,
            category=ticket.category,
            channel=ticket.channel,
            customer_name=ticket.customer.name,
            customer_email=str(ticket.customer.email),
            customer_tier=ticket.customer.tier,
        )
        try:
            async with session.begin_nested():
                session.add(postmortem)
        except IntegrityError:
            # Another replica created it first (the unique ticket_id is the arbiter).
            existing = await _by_ticket(session, ticket.ticket_id)
            if existing is None:
                raise
        else:
            count = await session.scalar(
                select(func.count()).select_from(TimelineEvent)
                .where(TimelineEvent.ticket_id == ticket.ticket_id)
            )
            emit(session, PostmortemCreated(ticket_id=ticket.ticket_id,
                                            postmortem_id=postmortem.id,
                                            timeline_events=count or 0),
                 source=SOURCE, time=postmortem.created_at)
            on_commit(session, metrics.POSTMORTEMS_CREATED.labels(postmortem.severity).inc)
            return postmortem
    assert existing is not None
    if closed_at > existing.closed_at:
        existing.closed_at = closed_at
    return existing


async def _by_ticket(session: AsyncSession, ticket_id: str) -> Postmortem | None:
    return await session.scalar(select(Postmortem).where(Postmortem.ticket_id == ticket_id))


async def get(session: AsyncSession, postmortem_id: str) -> Postmortem:
    postmortem = await session.get(Postmortem, postmortem_id)
    if postmortem is None:
        raise Problem(404, "Not Found", f"no post-mortem {postmortem_id}")
    return postmortem


async def timeline(session: AsyncSession, ticket_id: str) -> list[Entry]:
    rows = await session.scalars(
        select(TimelineEvent).where(TimelineEvent.ticket_id == ticket_id)
        .order_by(TimelineEvent.time, TimelineEvent.event_id)
    )
    return [Entry(event_id=r.event_id, type=r.type, time=r.time, data=json.loads(r.data),
                  source=r.source) for r in rows]


async def detail(session: AsyncSession, postmortem_id: str) -> PostmortemDetail:
    """The record with its timeline and measures, assembled now from what is stored."""
    postmortem = await get(session, postmortem_id)
    entries = await timeline(session, postmortem.ticket_id)
    return PostmortemDetail(
        **PostmortemOut.model_validate(postmortem).model_dump(),
        timeline=[TimelineEntry(time=e.time, type=e.type, source=e.source,
                                event_id=e.event_id, summary=summarize(e)) for e in entries],
        measures=measure(entries),
    )


async def list_postmortems(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    ticket_id: str | None,
    status: PostmortemStatus | None,
) -> tuple[list[Postmortem], str | None]:
    query = select(Postmortem)
    if ticket_id is not None:
        query = query.where(Postmortem.ticket_id == ticket_id)
    if status is not None:
        query = query.where(Postmortem.status == status.value)
    return await newest_first(session, query, created=Postmortem.created_at, key=Postmortem.id,
                              limit=limit, cursor=cursor)
