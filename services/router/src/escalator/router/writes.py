"""What routing decisions write besides loads: new assignments, history and events.

A handler call gathers them in one ``Writes`` and ``flush`` inserts each table's rows
with one statement (executemany), in the order the decisions made them, so a batch of
new tickets costs a few statements however many tickets it holds, and an ORM object per
row (which cost more than the decision itself) is never built. Rows go in before the
handler returns, so the next event in the same transaction sees them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router import metrics
from escalator.router.models import Assignment, AssignmentHistory
from escalator.router.roster import Pick
from escalator.shared.db import on_commit
from escalator.shared.events import CloudEvent, EventData, utcnow
from escalator.shared.outbox import publish_many

SOURCE = "/escalator/router"
assignments = cast(Table, Assignment.__table__)
history = cast(Table, AssignmentHistory.__table__)


@dataclass
class Draft:
    """A new ticket's assignment until it is inserted, with ``Assignment``'s attributes."""

    ticket_id: str
    path_id: str
    level: int
    agent_id: str | None
    severity: str
    status: str
    rule: str | None
    executive: bool
    language: str | None
    category: str | None
    sponsor_email: str | None
    holders: list[str]
    repeats: int
    created_at: datetime
    updated_at: datetime


#: Where a decision reads and moves a ticket: a stored assignment or a new one.
Held = Assignment | Draft


@dataclass
class Writes:
    """The rows, events and counts of one handler call's decisions, in order."""

    created: list[Draft] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    events: list[CloudEvent[Any]] = field(default_factory=list)
    assigned: Counter[tuple[str, str]] = field(default_factory=Counter)
    escalated: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def emit(self, data: EventData, time: datetime) -> None:
        self.events.append(CloudEvent.wrap(data, source=SOURCE, time=time))

    def record(self, assignment: Held, level: str, action: str, trigger: str, reason: str,
               chosen: Pick | None = None, rule: str | None = None) -> None:
        """A history entry at the assignment's current level and holder."""
        self.history.append({
            "ticket_id": assignment.ticket_id, "level": assignment.level, "level_name": level,
            "agent_id": assignment.agent_id, "action": action, "trigger": trigger,
            "reason": reason, "at": utcnow(), "strategy": chosen.strategy if chosen else None,
            "rule": rule, "candidates": chosen.compact() if chosen else None,
        })

    async def flush(self, session: AsyncSession) -> None:
        with session.no_autoflush:
            if self.created:
                await session.execute(insert(assignments), [vars(d) for d in self.created])
            if self.history:
                await session.execute(insert(history), self.history)
        await publish_many(session, self.events)
        if self.assigned or self.escalated:
            on_commit(session, _counter(self.assigned, self.escalated))
        self.created, self.history, self.events = [], [], []
        self.assigned, self.escalated = Counter(), Counter()


def _counter(assigned: Counter[tuple[str, str]], escalated: Counter[tuple[str, str, str]]
             ) -> Any:
    def count() -> None:
        for labels, n in assigned.items():
            metrics.ASSIGNMENTS.labels(*labels).inc(n)
        for moved, n in escalated.items():
            metrics.ESCALATIONS.labels(*moved).inc(n)

    return count
