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
from escalator.router.slots import SETTLE_CTES, settle, unsettled
from escalator.shared.db import on_commit, unnested
from escalator.shared.events import CloudEvent, EventData, utcnow
from escalator.shared.outbox import QUEUE, publish_many, queue_arrays

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
        """Write everything gathered, and the view's loads and cursors (``slots``).

        On PostgreSQL all of it is one statement (the inserts and updates as CTEs of the
        outbox insert, each table's rows as arrays): a batch of new tickets used to cost
        five round trips here, a third of its time at 1,000 tickets/s."""
        if session.get_bind().dialect.name == "postgresql":
            connection = await session.connection()  # Core: nothing of the ORM's to flush
            await connection.execute(_FLUSH, {
                **_columns("new_", _CREATED, [vars(d) for d in self.created]),
                **_columns("history_", _HISTORY, self.history),
                **unsettled(session), **queue_arrays(session, self.events)})
        else:
            await settle(session)
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


_CREATED = [column.name for column in assignments.columns]
_HISTORY = [column.name for column in history.columns if column.name != "id"]
_FLUSH = QUEUE.add_cte(
    insert(assignments).from_select(_CREATED, unnested(assignments, _CREATED, prefix="new_"))
    .cte("new_assignments"),
    insert(history).from_select(_HISTORY, unnested(history, _HISTORY, prefix="history_"))
    .cte("new_history"),
    *SETTLE_CTES,
)


def _columns(prefix: str, names: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {prefix + name: [row[name] for row in rows] for name in names}


def _counter(assigned: Counter[tuple[str, str]], escalated: Counter[tuple[str, str, str]]
             ) -> Any:
    def count() -> None:
        for labels, n in assigned.items():
            metrics.ASSIGNMENTS.labels(*labels).inc(n)
        for moved, n in escalated.items():
            metrics.ESCALATIONS.labels(*moved).inc(n)

    return count
