"""Routing decisions. They never commit: the caller's transaction also carries the events.

A ticket enters its path at level 0 of the default path; an SLA breach moves it one
level up and reassigns it; resolving or closing it releases the holder's capacity. Every
decision is a history row plus the event that tells the other services, written
together, so the API, the topics and the metrics cannot disagree.

Picking an agent (strategy ``least_loaded``): among the level team's *available* agents
whose open assignments are below their ``max_open_tickets``, the one with the fewest
open assignments, ties broken by agent id so the choice is reproducible. When nobody
qualifies the ticket still moves (its assignment is open with no holder) and the event
says why, so supervisors hear about it instead of the ticket waiting silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from escalator.router import metrics
from escalator.router.models import Agent, Assignment, AssignmentHistory, EscalationPath
from escalator.shared.db import on_commit
from escalator.shared.events import (
    EscalationKind,
    Holder,
    Severity,
    SlaBreached,
    TicketAssigned,
    TicketCreated,
    TicketEscalated,
    utcnow,
)
from escalator.shared.outbox import emit
from escalator.shared.pagination import decode_cursor, encode_cursor
from escalator.shared.problems import Problem

log = logging.getLogger(__name__)

SOURCE = "/escalator/router"
STRATEGY = "least_loaded"
OPEN, CLOSED = "open", "closed"


@dataclass(frozen=True)
class Pick:
    """Outcome of one routing decision: who (maybe nobody) and why, in words."""

    agent: Agent | None
    reason: str


def holder(agent: Agent | None) -> Holder | None:
    if agent is None:
        return None
    return Holder(agent_id=agent.id, name=agent.name, email=agent.email, team=agent.team_id)


async def open_counts(session: AsyncSession, agent_ids: list[str]) -> dict[str, int]:
    """Open assignments per agent (agents without any are absent)."""
    if not agent_ids:
        return {}
    rows = await session.execute(
        select(Assignment.agent_id, func.count())
        .where(Assignment.agent_id.in_(agent_ids), Assignment.status == OPEN)
        .group_by(Assignment.agent_id)
    )
    return {agent_id: count for agent_id, count in rows if agent_id is not None}


async def pick_agent(session: AsyncSession, team: str) -> Pick:
    """Least-loaded available agent of ``team`` with room for one more ticket."""
    # Locking the team's agents serializes concurrent picks in one team across replicas
    # (PostgreSQL), so two tickets cannot both take an agent's last free slot. SQLite
    # serializes whole write transactions already. Two replicas whose batches lock teams
    # in opposite orders can deadlock: PostgreSQL aborts one, whose whole batch must then
    # be retried (a transient error for the shared runner, not a poison message).
    agents = list((await session.scalars(
        select(Agent).where(Agent.team_id == team).order_by(Agent.id).with_for_update()
    )).all())
    if not agents:
        return Pick(None, f"team {team} has no agents")
    available = [a for a in agents if a.available]
    loads = await open_counts(session, [a.id for a in available])
    candidates = [a for a in available if loads.get(a.id, 0) < a.max_open_tickets]
    if not candidates:
        return Pick(None, f"no agent available in {team}: {len(agents) - len(available)} "
                          f"unavailable, {len(available)} at capacity")
    chosen = min(candidates, key=lambda a: (loads.get(a.id, 0), a.id))
    return Pick(chosen, f"least loaded available agent in {team} "
                        f"({loads.get(chosen.id, 0)} open)")


async def default_path(session: AsyncSession) -> EscalationPath | None:
    return await session.scalar(
        select(EscalationPath).where(EscalationPath.is_default.is_(True))
        .order_by(EscalationPath.id).limit(1)
    )


async def get_assignment(
    session: AsyncSession, ticket_id: str, *, lock: bool = False
) -> Assignment | None:
    query = select(Assignment).where(Assignment.ticket_id == ticket_id)
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def route_new_ticket(session: AsyncSession, ticket: TicketCreated) -> None:
    """Give a new ticket its first holder; a ticket already routed is left as it is."""
    if await get_assignment(session, ticket.ticket_id, lock=True) is not None:
        log.info("ticket already routed; ticket.created ignored")
        return
    path = await default_path(session)
    if path is None:
        log.error("no default escalation path is configured; ticket left unrouted")
        return
    now = utcnow()
    level = path.levels[0]
    pick = await pick_agent(session, level["team"])
    assignment = Assignment(
        ticket_id=ticket.ticket_id, path_id=path.id, level=0,
        agent_id=pick.agent.id if pick.agent else None, severity=ticket.severity.value,
        status=OPEN, created_at=now, updated_at=now,
    )
    session.add(assignment)
    _record(session, assignment, level["name"], "assigned", "ticket_created", pick.reason)
    _emit_assigned(session, assignment, path, pick)


async def escalate_on_breach(session: AsyncSession, breach: SlaBreached) -> None:
    """Move the ticket one level up its path and reassign it; at the top, only note it."""
    assignment = await get_assignment(session, breach.ticket_id, lock=True)
    if assignment is None or assignment.status != OPEN:
        log.warning("sla.breached for a ticket with no open assignment; nothing to escalate")
        return
    path = await session.get(EscalationPath, assignment.path_id)
    assert path is not None  # foreign key
    why = (f"{breach.clock} SLA breached (policy {breach.policy}, "
           f"{breach.lateness_seconds:.0f}s late)")
    if assignment.level + 1 >= len(path.levels):
        _record(session, assignment, level_name(path, assignment.level), "top_level_reached",
                "sla_breach", f"{why}; already at the top of path {path.id}")
        return
    from_level, from_holder = assignment.level, holder(await _agent(session, assignment))
    target = path.levels[from_level + 1]
    pick = await pick_agent(session, target["team"])
    assignment.level, assignment.updated_at = from_level + 1, utcnow()
    assignment.agent_id = pick.agent.id if pick.agent else None
    kind = EscalationKind(target["kind"])
    from_name = level_name(path, from_level)
    reason = f"{why}; escalated from {from_name} to {target['name']}"
    emit(session, TicketEscalated(
        ticket_id=assignment.ticket_id, severity=Severity(assignment.severity), path=path.id,
        kind=kind, trigger="sla_breach",
        from_level=from_level, from_level_name=from_name,
        to_level=assignment.level, to_level_name=target["name"],
        from_assignee=from_holder, to_assignee=holder(pick.agent), reason=reason,
    ), source=SOURCE, time=assignment.updated_at)
    on_commit(session, metrics.ESCALATIONS.labels(str(assignment.level), kind.value,
                                                  "sla_breach").inc)
    _record(session, assignment, target["name"], "escalated", "sla_breach", reason)
    _record(session, assignment, target["name"], "assigned", "sla_breach", pick.reason)
    _emit_assigned(session, assignment, path, pick)


async def release(session: AsyncSession, ticket_id: str) -> None:
    """The ticket is resolved or closed: its holder's capacity is free again."""
    assignment = await get_assignment(session, ticket_id, lock=True)
    if assignment is None:
        log.warning("ticket resolved or closed but was never routed; nothing to release")
        return
    if assignment.status != CLOSED:
        assignment.status, assignment.updated_at = CLOSED, utcnow()


async def update_severity(session: AsyncSession, ticket_id: str, severity: Severity) -> None:
    """Keep the projection's severity current, so later events carry the right one."""
    assignment = await get_assignment(session, ticket_id, lock=True)
    if assignment is not None and assignment.severity != severity.value:
        assignment.severity = severity.value


async def assignment_view(
    session: AsyncSession, ticket_id: str
) -> tuple[Assignment, EscalationPath, Agent | None, list[AssignmentHistory]]:
    """A ticket's assignment with what the API shows beside it; 404 when never routed."""
    assignment = await get_assignment(session, ticket_id)
    if assignment is None:
        raise Problem(404, "Not Found", f"no assignment for ticket {ticket_id}")
    path = await session.get(EscalationPath, assignment.path_id)
    assert path is not None  # foreign key
    history = await session.scalars(
        select(AssignmentHistory).where(AssignmentHistory.ticket_id == ticket_id)
        .order_by(AssignmentHistory.id)
    )
    return assignment, path, await _agent(session, assignment), list(history.all())


async def list_by_id(
    session: AsyncSession, model: Any, *, limit: int, cursor: str | None, **filters: Any
) -> tuple[list[Any], str | None]:
    """One page of ``model`` rows in id order, keyset-paginated on id; None filters ignored."""
    column: InstrumentedAttribute[str] = model.id
    query = select(model).order_by(column).limit(limit + 1)
    if cursor:
        (after,) = decode_cursor(cursor, 1)
        query = query.where(column > after)
    for name, value in filters.items():
        if value is not None:
            query = query.where(getattr(model, name) == value)
    rows = list((await session.scalars(query)).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id)


def level_name(path: EscalationPath, index: int) -> str:
    """The level's name; still an answer if the file since shortened the path."""
    if index < len(path.levels):
        return str(path.levels[index]["name"])
    return f"level {index} (no longer on path {path.id})"


async def _agent(session: AsyncSession, assignment: Assignment) -> Agent | None:
    return await session.get(Agent, assignment.agent_id) if assignment.agent_id else None


def _record(
    session: AsyncSession, assignment: Assignment, level: str, action: str, trigger: str,
    reason: str,
) -> None:
    session.add(AssignmentHistory(
        ticket_id=assignment.ticket_id, level=assignment.level, level_name=level,
        agent_id=assignment.agent_id, action=action, trigger=trigger, reason=reason,
        at=utcnow(),
    ))


def _emit_assigned(
    session: AsyncSession, assignment: Assignment, path: EscalationPath, pick: Pick
) -> None:
    emit(session, TicketAssigned(
        ticket_id=assignment.ticket_id, severity=Severity(assignment.severity), path=path.id,
        level=assignment.level, level_name=level_name(path, assignment.level),
        assignee=holder(pick.agent), strategy=STRATEGY, reason=pick.reason,
    ), source=SOURCE, time=assignment.updated_at)
    outcome = "assigned" if pick.agent else "unassigned"
    on_commit(session, metrics.ASSIGNMENTS.labels(str(assignment.level), outcome).inc)
