"""Routing decisions: which path and level a ticket is on, and who holds it.

Every move goes through ``_assign``: pick at the target level (``roster.pick``, under the
agents' row locks), keep the loads, append history with the explanation, and emit the
events in the same transaction (outbox). One trigger is one transaction holding the
ticket's assignment row lock, so no trigger assigns a ticket twice, on any replica.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router import metrics
from escalator.router.catalog import PathInfo, catalog, forget
from escalator.router.models import Agent, Assignment, AssignmentHistory
from escalator.router.roster import Ask, Pick, holder, pick, supervisor_of
from escalator.shared.db import on_commit
from escalator.shared.events import (
    EscalationKind,
    Severity,
    TicketAssigned,
    TicketEscalated,
    TicketSnapshot,
    TicketUnassignable,
    utcnow,
)
from escalator.shared.outbox import emit
from escalator.shared.problems import Problem

log = logging.getLogger(__name__)

SOURCE = "/escalator/router"
OPEN, CLOSED = "open", "closed"
HIERARCHICAL = EscalationKind.hierarchical


@dataclass(frozen=True)
class Move:
    """Why the ticket is moving: the trigger (as ``TicketEscalated.trigger``) and words."""

    trigger: str
    reason: str
    kind: EscalationKind | None = None  #: None: the target level's own kind


def _matches(match: dict[str, Any], ticket: TicketSnapshot) -> bool:
    facts: dict[str, Any] = {
        "severity": ticket.severity.value, "category": (ticket.category or "").lower(),
        "channel": ticket.channel.lower(), "tier": ticket.customer.tier.lower(),
        "language": ticket.language.lower(),
    }
    for name, wanted in match.items():
        if name == "executive":
            if bool(wanted) != ticket.executive:
                return False
        elif facts[name] not in wanted:
            return False
    return True


async def choose_path(
    session: AsyncSession, ticket: TicketSnapshot
) -> tuple[PathInfo | None, str | None]:
    """The first matching rule's path, else the default path (rule None)."""
    known = await catalog(session)
    for rule_id, path_id, match in known.rules:
        if _matches(match, ticket) and path_id in known.paths:
            return known.paths[path_id], rule_id
    return known.default, None


def executive_level(path: PathInfo) -> int:
    """The level marked executive, else the level of executives, else the top."""
    for n, level in enumerate(path.levels):
        if level.get("executive") or level.get("role") == "executive":
            return n
    return len(path.levels) - 1


async def path_of(session: AsyncSession, assignment: Assignment) -> PathInfo:
    known = await catalog(session)
    path = known.paths.get(assignment.path_id)
    if path is None:  # created since the copy was taken
        forget()
        path = (await catalog(session)).paths[assignment.path_id]
    return path


async def get_assignment(
    session: AsyncSession, ticket_id: str, *, lock: bool = False
) -> Assignment | None:
    query = select(Assignment).where(Assignment.ticket_id == ticket_id)
    if lock:  # the locked read must win over a stale copy in this session
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def route_new_ticket(session: AsyncSession, ticket: TicketSnapshot) -> None:
    """Give a new ticket its first holder; a ticket already routed is left as it is."""
    if await get_assignment(session, ticket.ticket_id, lock=True) is not None:
        log.info("ticket already routed; ticket.created ignored")
        return
    path, rule = await choose_path(session, ticket)
    if path is None:
        log.error("no default escalation path is configured; ticket left unrouted")
        return
    now = utcnow()
    start = executive_level(path) if ticket.executive else 0
    sponsor = ticket.customer.executive_sponsor
    assignment = Assignment(
        ticket_id=ticket.ticket_id, path_id=path.id, level=start, agent_id=None,
        severity=ticket.severity.value, status=OPEN, rule=rule, executive=ticket.executive,
        language=ticket.language.lower(), category=(ticket.category or "").lower() or None,
        sponsor_email=sponsor.email.lower() if sponsor and ticket.executive else None,
        holders=[], repeats=0, created_at=now, updated_at=now,
    )
    session.add(assignment)
    matched = f"rule {rule}" if rule else "default path"
    why = f"{matched} chose path {path.id}"
    if ticket.executive:
        why += "; executive ticket (cancellation or legal threat) starts at the executive level"
    await _assign(session, assignment, path, Move("ticket_created", why))


async def escalate(session: AsyncSession, ticket_id: str, move: Move, *,
                   to_level: int | None = None, executive: bool = False,
                   sponsor_email: str | None = None) -> bool:
    """Move the ticket to ``to_level`` (default: one up) and reassign; False if not routed.

    At the top, the path's repeat policy re-assigns within the level (to someone else)
    a few times, then the ticket stays and only the history notes the trigger."""
    assignment = await get_assignment(session, ticket_id, lock=True)
    if assignment is None or assignment.status != OPEN:
        log.warning("%s for a ticket with no open assignment; nothing to escalate",
                    move.trigger)
        return False
    path = await path_of(session, assignment)
    if executive:
        assignment.executive = True
        assignment.sponsor_email = sponsor_email or assignment.sponsor_email
    target = assignment.level + 1 if to_level is None else to_level
    top = len(path.levels) - 1
    if target > top:
        if assignment.repeats < path.repeat:
            assignment.repeats += 1
            move = Move("repeat", f"{move.reason}; top of path {path.id}: repeat "
                                  f"{assignment.repeats} of {path.repeat}", move.kind)
            await _assign(session, assignment, path, move, to_level=top)
            return True
        _record(session, assignment, level_name(path, assignment.level), "top_level_reached",
                move.trigger, f"{move.reason}; already at the top of path {path.id}")
        return True
    await _assign(session, assignment, path, move, to_level=target)
    return True


async def _assign(session: AsyncSession, assignment: Assignment, path: PathInfo,
                  move: Move, *, to_level: int | None = None, hops: int = 0) -> None:
    """Pick at the level, keep the loads, write history and events; on an empty level,
    queue on the team, tell its supervisor, and skip on if the path says so."""
    now = utcnow()
    from_level = assignment.level
    level_index = from_level if to_level is None else to_level
    level = path.levels[level_index]
    previous = await _agent(session, assignment)
    ask = Ask(language=assignment.language, category=assignment.category,
              avoid=tuple(assignment.holders), prefer_email=assignment.sponsor_email)
    if previous is not None:  # before the pick, whose locked read then sees the free slot
        await session.execute(update(Agent).where(Agent.id == previous.id, Agent.open_tickets > 0)
                              .values(open_tickets=Agent.open_tickets - 1))
    chosen = await pick(session, f"{path.id}:{level_index}", level, ask, now)
    if chosen.agent is not None:
        chosen.agent.open_tickets += 1
        if chosen.agent.id not in assignment.holders:
            assignment.holders = [*assignment.holders, chosen.agent.id]
    assignment.level, assignment.updated_at = level_index, now
    assignment.agent_id = chosen.agent.id if chosen.agent else None
    boss = holder(await supervisor_of(session, chosen.agent.team_id if chosen.agent
                                      else level.get("team")))
    name = level["name"]
    if to_level is not None:
        kind = move.kind or EscalationKind(level.get("kind", "functional"))
        emit(session, TicketEscalated(
            ticket_id=assignment.ticket_id, severity=Severity(assignment.severity),
            path=path.id, kind=kind, trigger=move.trigger,  # type: ignore[arg-type]
            from_level=from_level, from_level_name=level_name(path, from_level),
            to_level=level_index, to_level_name=name, from_assignee=holder(previous),
            to_assignee=holder(chosen.agent), reason=move.reason, supervisor=boss,
            executive=assignment.executive,
        ), source=SOURCE, time=now)
        on_commit(session, metrics.ESCALATIONS.labels(str(level_index), kind.value,
                                                      move.trigger).inc)
        _record(session, assignment, name, "escalated", move.trigger, move.reason)
    _record(session, assignment, name, "assigned", move.trigger, chosen.reason, chosen,
            rule=assignment.rule)
    emit(session, TicketAssigned(
        ticket_id=assignment.ticket_id, severity=Severity(assignment.severity), path=path.id,
        level=level_index, level_name=name, assignee=holder(chosen.agent),
        strategy=chosen.strategy, reason=chosen.reason, rule=assignment.rule,
        candidates=chosen.candidates, previous_assignee=holder(previous), supervisor=boss,
        executive=assignment.executive, ack_timeout_seconds=level.get("ack_timeout_seconds"),
    ), source=SOURCE, time=now)
    outcome = "assigned" if chosen.agent else "unassigned"
    on_commit(session, metrics.ASSIGNMENTS.labels(str(level_index), outcome).inc)
    if chosen.agent is None:
        await _unassignable(session, assignment, path, level, chosen, boss, hops)


async def _unassignable(session: AsyncSession, assignment: Assignment, path: PathInfo,
                        level: dict[str, Any], chosen: Pick, boss: Any, hops: int) -> None:
    team = level.get("team") or (chosen.candidates[0].agent_id if chosen.candidates else "")
    emit(session, TicketUnassignable(
        ticket_id=assignment.ticket_id, severity=Severity(assignment.severity), path=path.id,
        level=assignment.level, level_name=level["name"], team=str(team), supervisor=boss,
        reason=f"{chosen.reason}; queued on {team}",
    ), source=SOURCE, time=assignment.updated_at)
    top = len(path.levels) - 1
    if path.on_empty == "skip" and assignment.level < top and hops < len(path.levels):
        await _assign(session, assignment, path,
                      Move("empty_level", f"nobody at {level['name']} can take it; "
                                          f"path {path.id} skips empty levels"),
                      to_level=assignment.level + 1, hops=hops + 1)


async def adjust_load(session: AsyncSession, ticket_id: str, *, reopen: bool) -> None:
    """Resolved/closed frees the holder's slot; reopened takes it again."""
    assignment = await get_assignment(session, ticket_id, lock=True)
    if assignment is None:
        log.warning("ticket finished or reopened but was never routed; nothing to change")
        return
    status = OPEN if reopen else CLOSED
    if assignment.status == status:
        return
    assignment.status, assignment.updated_at = status, utcnow()
    if assignment.agent_id is not None:
        step = 1 if reopen else -1
        await session.execute(
            update(Agent).where(Agent.id == assignment.agent_id, Agent.open_tickets + step >= 0)
            .values(open_tickets=Agent.open_tickets + step))


async def update_severity(session: AsyncSession, ticket_id: str, severity: Severity) -> None:
    """Keep the projection's severity current, so later events carry the right one."""
    assignment = await get_assignment(session, ticket_id, lock=True)
    if assignment is not None and assignment.severity != severity.value:
        assignment.severity = severity.value


async def assignment_view(
    session: AsyncSession, ticket_id: str
) -> tuple[Assignment, PathInfo, Agent | None, list[AssignmentHistory]]:
    """A ticket's assignment with what the API shows beside it; 404 when never routed."""
    # Assignment first: each statement sees its own snapshot (READ COMMITTED), so the
    # history read after it already holds the move that put the ticket where it is; the
    # other order could show a level its history does not explain yet.
    assignment = await get_assignment(session, ticket_id)
    if assignment is None:
        raise Problem(404, "Not Found", f"no assignment for ticket {ticket_id}")
    history = list((await session.scalars(
        select(AssignmentHistory).where(AssignmentHistory.ticket_id == ticket_id)
        .order_by(AssignmentHistory.id)
    )).all())
    path = await path_of(session, assignment)
    return assignment, path, await _agent(session, assignment), history


def level_name(path: PathInfo, index: int) -> str:
    """The level's name; still an answer if the file since shortened the path."""
    if index < len(path.levels):
        return str(path.levels[index]["name"])
    return f"level {index} (no longer on path {path.id})"


async def _agent(session: AsyncSession, assignment: Assignment) -> Agent | None:
    return await session.get(Agent, assignment.agent_id) if assignment.agent_id else None


def _record(session: AsyncSession, assignment: Assignment, level: str, action: str,
            trigger: str, reason: str, chosen: Pick | None = None,
            rule: str | None = None) -> None:
    session.add(AssignmentHistory(
        ticket_id=assignment.ticket_id, level=assignment.level, level_name=level,
        agent_id=assignment.agent_id, action=action, trigger=trigger, reason=reason,
        at=utcnow(), strategy=chosen.strategy if chosen else None, rule=rule,
        candidates=[c.model_dump() for c in chosen.candidates] if chosen else None,
    ))
