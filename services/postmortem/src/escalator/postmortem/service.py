"""Timeline collection and post-mortem records. Nothing here commits: the consumer's (or
the request's) transaction owns the change and the outbox row that announces it.

A closed ticket gets a post-mortem only if it was an escalation (``criteria.py``). A
ticket that is reopened and closed again keeps its one post-mortem, whose ``closed_at``
follows the latest close.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.postmortem import criteria, metrics, review
from escalator.postmortem.config import config_of
from escalator.postmortem.models import Postmortem, Survey, TimelineEvent
from escalator.postmortem.schemas import (
    PostmortemDetail,
    PostmortemOut,
    PostmortemStatus,
    SurveyOut,
    TimelineEntry,
)
from escalator.postmortem.timeline import Entry, measure, summarize
from escalator.shared.db import InsertNew, held, on_commit
from escalator.shared.events import POSTMORTEMS, CloudEvent, PostmortemCreated, TicketClosed, utcnow
from escalator.shared.outbox import emit
from escalator.shared.pagination import newest_first
from escalator.shared.problems import Problem

SOURCE = "/escalator/postmortem"


async def record_events(session: AsyncSession,
                        events: list[CloudEvent[Any]]) -> list[CloudEvent[Any]]:
    """Store ``events`` in their tickets' timelines with one statement; returns those
    stored, in order (not those whose id is there already).

    The shared inbox already drops redeliveries; the conflict guard keeps the timeline
    right even when an event is replayed under another consumer group or inbox reset.
    Our own ``postmortem.*`` events are not part of the ticket's story and are skipped.
    """
    kept = [event for event in events if event.topic != POSTMORTEMS]
    if not kept:
        return []
    now = utcnow()
    rows = [{
        "event_id": event.id, "ticket_id": event.subject, "type": event.type,
        "source": event.source,
        # SQLite stores wall-clock text: normalise so every row sorts on one clock.
        "time": event.time.astimezone(UTC), "topic": event.topic,
        "data": event.data.model_dump_json(), "received_at": now,
    } for event in kept]
    stored = await _INSERT(session, rows)
    fresh = [event for event in kept if event.id in stored]
    on_commit(session, _count(Counter(event.type for event in fresh)))
    return fresh


def _count(types: Counter[str]) -> Any:
    def count() -> None:
        for event_type, n in types.items():
            metrics.TIMELINE_EVENTS.labels(event_type).inc(n)

    return count


_timeline = cast(Table, TimelineEvent.__table__)  # Core: rows, and which went in
_INSERT = InsertNew(_timeline, "event_id", [column.name for column in _timeline.columns])


async def reconsider_all(session: AsyncSession, events: list[CloudEvent[Any]]) -> None:
    """``reconsider`` each decisive event of a ticket that could need it (closed at some
    point, or with a post-mortem), found with one query: on the way through the pipeline
    a ticket is open when it is assigned or escalated, and asking per event cost two
    queries for nothing."""
    decisive = [event for event in events if event.type in criteria.DECISIVE]
    if not decisive:
        return
    tickets = sorted({event.subject for event in decisive})
    maybe = set((await session.scalars(_decided_query(session.get_bind().dialect.name),
                                       {"ticket_id": tickets})).all())
    for event in decisive:
        if event.subject in maybe:
            await reconsider(session, event)


@functools.cache
def _decided_query(dialect: str) -> Any:
    """The tickets (``ticket_id``, a list) that have a post-mortem or were closed, built
    once: building it and its cache key anew cost about as much CPU as its round trip.
    On PostgreSQL a probe per ticket (``held``), whatever the tables' statistics."""
    return union(held(Postmortem.ticket_id, dialect=dialect),
                 held(TimelineEvent.ticket_id, dialect=dialect,
                      where=[TimelineEvent.type == "ticket.closed"]))


async def open_for_closed_ticket(
    session: AsyncSession, event: CloudEvent[TicketClosed]
) -> Postmortem | None:
    """On a close: follow it on an existing post-mortem, or open one (draft) if the
    ticket meets the criteria. None when it was not an escalation (so far)."""
    closed_at = event.time.astimezone(UTC)
    existing = await _by_ticket(session, event.data.ticket_id)
    if existing is not None:
        if closed_at > existing.closed_at:
            existing.closed_at = closed_at
        return existing
    snapshot = json.loads(event.data.model_dump_json())
    return await _open_if_escalation(session, event.data.ticket_id, snapshot, closed_at)


async def reconsider(session: AsyncSession, event: CloudEvent[Any]) -> Postmortem | None:
    """An escalation, assignment or breach that arrives after the ticket's close (topics
    are consumed independently) may make it an escalation after all, or add a reason to
    the post-mortem it already has."""
    if event.type not in criteria.DECISIVE:
        return None
    last_state = await session.scalar(
        select(TimelineEvent).where(TimelineEvent.ticket_id == event.subject,
                                    TimelineEvent.type.in_(TICKET_STATE_TYPES))
        .order_by(TimelineEvent.time.desc(), TimelineEvent.event_id.desc()).limit(1)
    )
    existing = await _by_ticket(session, event.subject)
    if existing is not None:
        snapshot = json.loads(last_state.data) if last_state is not None else None
        met = criteria.reasons(config_of(session).criteria,
                               await timeline(session, event.subject), snapshot)
        if met and json.dumps(met) != existing.reasons:
            existing.reasons = json.dumps(met)
            existing.executive = "executive_escalation" in met
        return existing
    if last_state is None or last_state.type != "ticket.closed":
        return None
    return await _open_if_escalation(session, event.subject, json.loads(last_state.data),
                                     last_state.time)


#: Ticket events that say whether a ticket is closed now (the last one decides).
TICKET_STATE_TYPES = ("ticket.closed", "ticket.reopened")


async def _open_if_escalation(session: AsyncSession, ticket_id: str, snapshot: dict[str, Any],
                              closed_at: datetime) -> Postmortem | None:
    entries = await timeline(session, ticket_id)
    met = criteria.reasons(config_of(session).criteria, entries, snapshot)
    if not met:
        on_commit(session, metrics.CLOSED_WITHOUT_POSTMORTEM.inc)
        return None
    customer = snapshot.get("customer") or {}
    postmortem = Postmortem(
        id=str(uuid.uuid4()),
        ticket_id=ticket_id,
        status=PostmortemStatus.draft.value,
        created_at=utcnow(),
        closed_at=closed_at,
        subject=str(snapshot.get("subject", "")),
        severity=str(snapshot.get("severity", "")),
        category=snapshot.get("category"),
        channel=str(snapshot.get("channel", "")),
        customer_name=str(customer.get("name", "")),
        customer_email=str(customer.get("email", "")),
        customer_tier=str(customer.get("tier", "")),
        executive="executive_escalation" in met,
        reasons=json.dumps(met),
        improvements="{}",
        no_action_items=False,
    )
    try:
        async with session.begin_nested():
            session.add(postmortem)
    except IntegrityError:
        # Another replica created it first (the unique ticket_id is the arbiter).
        return await _by_ticket(session, ticket_id)
    emit(session, PostmortemCreated(ticket_id=ticket_id, postmortem_id=postmortem.id,
                                    timeline_events=len(entries)),
         source=SOURCE, time=postmortem.created_at)
    on_commit(session, metrics.POSTMORTEMS_CREATED.labels(postmortem.severity).inc)
    return postmortem


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
    """The record with its timeline, measures, action items and survey, assembled now
    from what is stored (so late events count)."""
    postmortem = await get(session, postmortem_id)
    entries = await timeline(session, postmortem.ticket_id)
    items = [review.item_out(i) for i in await review.items(session, postmortem.id)]
    survey = await session.get(Survey, postmortem.ticket_id)
    return PostmortemDetail(
        **PostmortemOut.of(postmortem).model_dump(),
        timeline=[TimelineEntry(time=e.time, type=e.type, source=e.source,
                                event_id=e.event_id, summary=summarize(e)) for e in entries],
        measures=measure(entries, config_of(session).business_hours),
        action_items=items,
        action_items_overdue=sum(i.overdue for i in items),
        survey=SurveyOut.model_validate(survey) if survey else None,
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
