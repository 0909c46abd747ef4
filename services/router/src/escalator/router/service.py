"""Routing decisions: which path and level a ticket is on, and who holds it.

Every move goes through ``assign``: pick at the target level (``slots.pick``: the
level's agents locked, the slot taken in memory), then gather the history with the
explanation and the events in the handler call's ``Writes``. The caller then writes it
all with ``Writes.flush`` (loads and cursors, rows and the outbox) in the same
transaction. A move of an existing ticket first locks its assignment row, so one
trigger moves a ticket once, on any replica. New tickets come in batches (``intake``).

The roster is read from the in-memory ``catalog``; ``pick`` raises ``Stale`` before
changing anything when the database holds a newer config version, and the decision is
made again on the reloaded roster (``_with_roster``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router.catalog import Catalog, PathInfo, catalog, current, reload
from escalator.router.models import Agent, Assignment, AssignmentHistory, PendingMove
from escalator.router.roster import Ask, Pick, holder
from escalator.router.slots import Stale, note_load, pick
from escalator.router.writes import Held, Writes
from escalator.shared.db import read_snapshot
from escalator.shared.events import (
    EscalationKind,
    Severity,
    TicketAssigned,
    TicketEscalated,
    TicketSnapshot,
    TicketUnassignable,
    utcnow,
)
from escalator.shared.problems import Problem

log = logging.getLogger(__name__)

OPEN, CLOSED = "open", "closed"
HIERARCHICAL = EscalationKind.hierarchical
T = TypeVar("T")


@dataclass(frozen=True)
class Move:
    """Why the ticket is moving: the trigger (as ``TicketEscalated.trigger``) and words."""

    trigger: str
    reason: str
    kind: EscalationKind | None = None  #: None: the target level's own kind


def _matches(match: dict[str, Any], facts: dict[str, Any]) -> bool:
    for name, wanted in match.items():
        if name == "executive":
            if bool(wanted) != facts[name]:
                return False
        elif facts[name] not in wanted:
            return False
    return True


def choose_path(known: Catalog, ticket: TicketSnapshot) -> tuple[PathInfo | None, str | None]:
    """The first matching rule's path, else the default path (rule None)."""
    facts: dict[str, Any] = {
        "severity": ticket.severity.value, "category": (ticket.category or "").lower(),
        "channel": ticket.channel.lower(), "tier": ticket.customer.tier.lower(),
        "language": ticket.language.lower(), "executive": ticket.executive,
    }
    for rule_id, path_id, match in known.rules:
        if _matches(match, facts) and path_id in known.paths:
            return known.paths[path_id], rule_id
    return known.default, None


def executive_level(path: PathInfo) -> int:
    """The level marked executive, else the level of executives, else the top."""
    for n, level in enumerate(path.levels):
        if level.get("executive") or level.get("role") == "executive":
            return n
    return len(path.levels) - 1


async def path_of(session: AsyncSession, assignment: Assignment) -> PathInfo:
    """The assignment's path from the current roster (for the API)."""
    return (await current(session)).paths[assignment.path_id]


async def get_assignment(
    session: AsyncSession, ticket_id: str, *, lock: bool = False
) -> Assignment | None:
    query = select(Assignment).where(Assignment.ticket_id == ticket_id)
    if lock:  # the locked read must win over a stale copy in this session
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def _with_roster(session: AsyncSession, decide: Callable[[Catalog], Awaitable[T]]) -> T:
    """Run ``decide`` on the in-memory roster, again on a reloaded one if it was stale."""
    known = await catalog(session)
    while True:
        try:
            return await decide(known)
        except Stale:
            known = await reload(session)


async def escalate(session: AsyncSession, ticket_id: str, move: Move, *,
                   to_level: int | None = None, executive: bool = False,
                   sponsor_email: str | None = None, keep: bool = False) -> bool:
    """Move the ticket to ``to_level`` (default: one up; the executive level when
    ``executive``) and reassign; False if it has no open assignment.

    At the top, the path's repeat policy re-assigns within the level (to someone else)
    a few times; then the ticket stays with its holder and the executives are told.
    ``keep``: a ticket not routed yet gets the move once it is (``deferred``)."""
    assignment = await get_assignment(session, ticket_id, lock=True)
    if assignment is None and keep:
        log.info("%s for a ticket not routed yet; applied once it is", move.trigger)
        session.add(PendingMove(
            ticket_id=ticket_id, trigger=move.trigger, reason=move.reason,
            kind=move.kind.value if move.kind else None, executive=executive,
            sponsor_email=sponsor_email, received_at=utcnow()))
        return False
    if assignment is None or assignment.status != OPEN:
        log.warning("%s for a ticket with no open assignment; nothing to escalate",
                    move.trigger)
        return False
    if executive:
        assignment.executive = True
        assignment.sponsor_email = sponsor_email or assignment.sponsor_email
    writes = Writes()

    async def decide(known: Catalog) -> None:
        path = known.paths.get(assignment.path_id)
        if path is None:  # created since this copy was taken
            raise Stale
        target = (executive_level(path) if executive
                  else assignment.level + 1 if to_level is None else to_level)
        top = len(path.levels) - 1
        if target <= top:
            await assign(session, known, assignment, path, move, writes, to_level=target)
        elif assignment.repeats < path.repeat:
            repeat = Move("repeat", f"{move.reason}; top of path {path.id}: repeat "
                                    f"{assignment.repeats + 1} of {path.repeat}", move.kind)
            await assign(session, known, assignment, path, repeat, writes, to_level=top)
            assignment.repeats += 1
        else:
            _stay_at_top(known, assignment, path, move, writes)

    await _with_roster(session, decide)
    await writes.flush(session)
    return True


def _stay_at_top(known: Catalog, assignment: Assignment, path: PathInfo, move: Move,
                 writes: Writes) -> None:
    """The path is exhausted: the holder keeps the ticket, and a ``ticket.escalated`` that
    stays on its level, marked executive, keeps the executives informed of each trigger."""
    now, level = utcnow(), assignment.level
    name = level_name(path, level)
    held = known.agents.get(assignment.agent_id) if assignment.agent_id else None
    team = held.team_id if held else path.levels[min(level, len(path.levels) - 1)].get("team")
    who = f"stays with {held.name}" if held else "stays queued"
    reason = (f"{move.reason}; already at the top of path {path.id}"
              f"{f' after {path.repeat} repeats' if path.repeat else ''}: {who}; "
              "executives informed")
    writes.emit(TicketEscalated(
        ticket_id=assignment.ticket_id, severity=Severity(assignment.severity), path=path.id,
        kind=move.kind or HIERARCHICAL, trigger=move.trigger,  # type: ignore[arg-type]
        from_level=level, from_level_name=name, to_level=level, to_level_name=name,
        from_assignee=holder(held), to_assignee=holder(held), reason=reason,
        supervisor=holder(known.supervisors.get(team) if team else None), executive=True,
    ), now)
    writes.record(assignment, name, "top_level_reached", move.trigger, reason)


async def assign(session: AsyncSession, known: Catalog, assignment: Held, path: PathInfo,
                 move: Move, writes: Writes, *, to_level: int | None = None, hops: int = 0,
                 check_version: bool = True) -> None:
    """Pick at the level, gather history and events in ``writes``; on an empty level,
    queue on the team, tell its supervisor, and skip on if the path says so."""
    now = utcnow()
    from_level = assignment.level
    level_index = from_level if to_level is None else to_level
    level = path.levels[level_index]
    previous = known.agents.get(assignment.agent_id) if assignment.agent_id else None
    ask = Ask(language=assignment.language, category=assignment.category,
              avoid=tuple(assignment.holders), prefer_email=assignment.sponsor_email)
    chosen = await pick(session, known, path, level_index, ask, now,
                        release=assignment.agent_id, check_version=check_version and hops == 0)
    agent = chosen.agent
    if agent is not None and agent.id not in assignment.holders:
        assignment.holders = [*assignment.holders, agent.id]
    assignment.level, assignment.updated_at = level_index, now
    assignment.agent_id = agent.id if agent else None
    team = agent.team_id if agent else level.get("team")
    boss = holder(known.supervisors.get(team) if team else None)
    name = level["name"]
    if to_level is not None:
        kind = move.kind or EscalationKind(level.get("kind", "functional"))
        writes.emit(TicketEscalated(
            ticket_id=assignment.ticket_id, severity=Severity(assignment.severity),
            path=path.id, kind=kind, trigger=move.trigger,  # type: ignore[arg-type]
            from_level=from_level, from_level_name=level_name(path, from_level),
            to_level=level_index, to_level_name=name, from_assignee=holder(previous),
            to_assignee=holder(agent), reason=move.reason, supervisor=boss,
            executive=assignment.executive,
        ), now)
        writes.escalated[(str(level_index), kind.value, move.trigger)] += 1
        writes.record(assignment, name, "escalated", move.trigger, move.reason)
    writes.record(assignment, name, "assigned", move.trigger, chosen.reason, chosen,
                  rule=assignment.rule)
    writes.emit(TicketAssigned(
        ticket_id=assignment.ticket_id, severity=Severity(assignment.severity), path=path.id,
        level=level_index, level_name=name, assignee=holder(agent),
        strategy=chosen.strategy, reason=chosen.reason, rule=assignment.rule,
        candidates=chosen.candidates(), previous_assignee=holder(previous), supervisor=boss,
        executive=assignment.executive, ack_timeout_seconds=level.get("ack_timeout_seconds"),
    ), now)
    writes.assigned[(str(level_index), "assigned" if agent else "unassigned")] += 1
    if agent is None:
        await _unassignable(session, known, assignment, path, level, chosen, boss, writes,
                            hops)


async def _unassignable(session: AsyncSession, known: Catalog, assignment: Held,
                        path: PathInfo, level: dict[str, Any], chosen: Pick, boss: Any,
                        writes: Writes, hops: int) -> None:
    team = level.get("team") or (chosen.considered[0][0].id if chosen.considered else "")
    writes.emit(TicketUnassignable(
        ticket_id=assignment.ticket_id, severity=Severity(assignment.severity), path=path.id,
        level=assignment.level, level_name=level["name"], team=str(team), supervisor=boss,
        reason=f"{chosen.reason}; queued on {team}",
    ), assignment.updated_at)
    top = len(path.levels) - 1
    if path.on_empty == "skip" and assignment.level < top and hops < len(path.levels):
        await assign(session, known, assignment, path,
                     Move("empty_level", f"nobody at {level['name']} can take it; "
                                         f"path {path.id} skips empty levels"),
                     writes, to_level=assignment.level + 1, hops=hops + 1)


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
        note_load(session, assignment.agent_id, step)


async def update_severity(session: AsyncSession, ticket_id: str, severity: Severity) -> None:
    """Keep the projection's severity current, so later events carry the right one."""
    assignment = await get_assignment(session, ticket_id, lock=True)
    if assignment is not None and assignment.severity != severity.value:
        assignment.severity = severity.value


async def assignment_view(
    session: AsyncSession, ticket_id: str
) -> tuple[Assignment, PathInfo, Agent | None, list[AssignmentHistory]]:
    """A ticket's assignment with what the API shows beside it; 404 when never routed.

    Read in one snapshot, so the holder shown is the one the history beside it ends with.
    """
    await read_snapshot(session)
    assignment = await get_assignment(session, ticket_id)
    if assignment is None:
        raise Problem(404, "Not Found", f"no assignment for ticket {ticket_id}")
    history = list((await session.scalars(
        select(AssignmentHistory).where(AssignmentHistory.ticket_id == ticket_id)
        .order_by(AssignmentHistory.id)
    )).all())
    path = await path_of(session, assignment)
    agent = await session.get(Agent, assignment.agent_id) if assignment.agent_id else None
    return assignment, path, agent, history


def level_name(path: PathInfo, index: int) -> str:
    """The level's name; still an answer if the file since shortened the path."""
    if index < len(path.levels):
        return str(path.levels[index]["name"])
    return f"level {index} (no longer on path {path.id})"
