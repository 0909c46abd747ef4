"""Figures over the post-mortems of a period (by when the ticket closed).

Everything is computed at read time from the stored records and timelines, so late
events and edits count, and nothing is kept in sync. Percentiles use the nearest-rank
method (a value that actually occurred, easy to check by hand). A root cause is
"recurring" when the same category was found at least twice in the period.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.postmortem.config import config_of
from escalator.postmortem.models import ActionItem, Postmortem, Survey, TimelineEvent
from escalator.postmortem.schemas import UNFINISHED, Measures
from escalator.postmortem.timeline import Entry, measure
from escalator.shared.db import among

RECURRING_AT = 2


class Percentiles(BaseModel):
    count: int
    p50: float | None
    p90: float | None


class BreachRate(BaseModel):
    breached: int = Field(description="Escalations with at least one breach of this clock")
    rate: float


class Satisfaction(BaseModel):
    responses: int
    average: float | None
    distribution: dict[str, int] = Field(description="Answers by score 1-5")


class ActionItemFigures(BaseModel):
    total: int
    open: int = Field(description="Not done nor dropped")
    overdue: int


class Summary(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    escalations: int
    completed_reviews: int
    by_severity: dict[str, int]
    by_team: dict[str, int] = Field(description="Escalations each team held at some point")
    by_channel: dict[str, int]
    by_path: dict[str, int]
    breach_rate: dict[str, BreachRate] = Field(description="By SLA clock")
    time_to_first_response_seconds: Percentiles
    time_to_resolution_seconds: Percentiles
    levels_reached: dict[str, int] = Field(description="Escalations by highest level reached")
    root_causes: dict[str, int]
    recurring_root_causes: list[str] = Field(
        description=f"Categories found {RECURRING_AT} or more times, most frequent first")
    satisfaction: Satisfaction
    action_items: ActionItemFigures

    model_config = {"populate_by_name": True}


@dataclass
class Reviewed:
    """One post-mortem with what the report needs from it."""

    postmortem: Postmortem
    entries: list[Entry]
    measures: Measures


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def _percentiles(values: Iterable[float | None]) -> Percentiles:
    known = [v for v in values if v is not None]
    return Percentiles(count=len(known), p50=nearest_rank(known, 0.5),
                       p90=nearest_rank(known, 0.9))


def _sorted_counts(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


async def load(session: AsyncSession, start: datetime, end: datetime) -> list[Reviewed]:
    rows = list(await session.scalars(
        select(Postmortem).where(Postmortem.closed_at >= start, Postmortem.closed_at < end)
        .order_by(Postmortem.closed_at, Postmortem.id)))
    by_ticket: dict[str, list[Entry]] = {r.ticket_id: [] for r in rows}
    for chunk in _chunks(list(by_ticket), 500):
        events = await session.scalars(select(TimelineEvent).where(
            among(TimelineEvent.ticket_id, "tickets", session)), {"tickets": chunk})
        for e in events:
            by_ticket[e.ticket_id].append(Entry(e.event_id, e.type, e.time, json.loads(e.data),
                                                e.source))
    hours = config_of(session).business_hours
    return [Reviewed(r, by_ticket[r.ticket_id], measure(by_ticket[r.ticket_id], hours))
            for r in rows]


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def summary(session: AsyncSession, start: datetime, end: datetime, *,
                  today: date) -> tuple[Summary, list[Reviewed]]:
    reviewed = await load(session, start, end)
    tickets = [r.postmortem.ticket_id for r in reviewed]
    ids = [r.postmortem.id for r in reviewed]
    surveys: list[Survey] = []
    items: list[ActionItem] = []
    for chunk in _chunks(tickets, 500):
        surveys += list(await session.scalars(select(Survey).where(
            among(Survey.ticket_id, "tickets", session)), {"tickets": chunk}))
    for chunk in _chunks(ids, 500):
        items += list(await session.scalars(select(ActionItem).where(
            among(ActionItem.postmortem_id, "ids", session)), {"ids": chunk}))
    return build(start, end, reviewed, surveys, items, today=today), reviewed


def build(start: datetime, end: datetime, reviewed: list[Reviewed], surveys: list[Survey],
          items: list[ActionItem], *, today: date) -> Summary:
    """The summary from already-loaded rows (pure, so it is checked on a seeded set)."""
    total = len(reviewed)
    teams: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    clocks: Counter[str] = Counter()
    for r in reviewed:
        teams.update({str(t) for t in _teams(r.entries)})
        path = next((str(e.data["path"]) for e in reversed(r.entries)
                     if e.type in {"ticket.assigned", "ticket.escalated"}
                     and e.data.get("path")), None)
        paths[path or "unassigned"] += 1
        clocks.update(set(r.measures.sla_breaches))
    causes = Counter(r.postmortem.root_cause_category for r in reviewed
                     if r.postmortem.root_cause_category)
    scores = [s.score for s in surveys]
    unfinished = [i for i in items if i.status in UNFINISHED]
    return Summary(
        **{"from": start}, to=end, escalations=total,
        completed_reviews=sum(r.postmortem.status == "completed" for r in reviewed),
        by_severity=_sorted_counts(Counter(r.postmortem.severity for r in reviewed)),
        by_team=_sorted_counts(teams),
        by_channel=_sorted_counts(Counter(r.postmortem.channel for r in reviewed)),
        by_path=_sorted_counts(paths),
        breach_rate={clock: BreachRate(breached=n, rate=round(n / total, 4))
                     for clock, n in sorted(clocks.items())},
        time_to_first_response_seconds=_percentiles(
            r.measures.time_to_first_response_seconds for r in reviewed),
        time_to_resolution_seconds=_percentiles(
            r.measures.time_to_resolution_seconds for r in reviewed),
        levels_reached={str(k): v for k, v in sorted(
            Counter(r.measures.levels_reached for r in reviewed).items())},
        root_causes=_sorted_counts(Counter({str(k): v for k, v in causes.items()})),
        recurring_root_causes=[str(c) for c, n in _sorted_counts(
            Counter({str(k): v for k, v in causes.items()})).items() if n >= RECURRING_AT],
        satisfaction=Satisfaction(
            responses=len(scores),
            average=round(sum(scores) / len(scores), 2) if scores else None,
            distribution={str(s): scores.count(s) for s in range(1, 6)}),
        action_items=ActionItemFigures(
            total=len(items), open=len(unfinished),
            overdue=sum(i.due_date < today for i in unfinished)),
    )


def _teams(entries: list[Entry]) -> set[str]:
    teams: set[str] = set()
    for e in entries:
        for key in ("assignee", "to_assignee"):
            holder = e.data.get(key) if e.type in {"ticket.assigned",
                                                   "ticket.escalated"} else None
            if isinstance(holder, dict) and holder.get("team"):
                teams.add(str(holder["team"]))
    return teams
