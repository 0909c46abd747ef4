"""Router's REST API: who holds what and why, manual escalation, and the roster reads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from escalator.router import service
from escalator.router.models import Agent, EscalationPath, Team
from escalator.router.roster import expand, holder, on_shift
from escalator.router.schemas import (
    AgentOut,
    AgentPage,
    AssignmentOut,
    EscalateIn,
    EscalateOut,
    EscalationPathOut,
    EscalationPathPage,
    HistoryEntry,
    TeamOut,
    TeamPage,
)
from escalator.shared.app import SessionDep
from escalator.shared.auth import require
from escalator.shared.events import EscalationKind, utcnow
from escalator.shared.pagination import decode_cursor, encode_cursor
from escalator.shared.problems import Problem

router = APIRouter(prefix="/v1")
read = require("router:read")
write = require("router:write")

Limit = Annotated[int, Query(ge=1, le=500)]


def team_out(t: Team) -> TeamOut:
    return TeamOut(id=t.id, name=t.name, department=t.department, lead=t.lead_id,
                   skills=t.skills or [])


def agent_out(a: Agent) -> AgentOut:
    return AgentOut(id=a.id, name=a.name, email=a.email, team=a.team_id, role=a.role,
                    available=a.available, on_shift=on_shift(a, utcnow()),
                    max_open_tickets=a.max_open_tickets, open_assignments=a.open_tickets,
                    skills=a.skills or [], languages=a.languages or [], timezone=a.timezone,
                    shifts=a.shifts or [], chat_handle=a.chat_handle)


def path_out(p: EscalationPath) -> EscalationPathOut:
    return EscalationPathOut.model_validate(p)


@router.get("/assignments/{ticket_id}", response_model=AssignmentOut, tags=["assignments"],
            dependencies=[read],
            summary="Who holds a ticket, at which level, how it got there and why")
async def get_assignment(ticket_id: str, session: SessionDep) -> AssignmentOut:
    assignment, path, agent, history = await service.assignment_view(session, ticket_id)
    last = next((h for h in reversed(history) if h.action == "assigned"), None)
    return AssignmentOut(
        ticket_id=assignment.ticket_id,
        path=path.id,
        rule=assignment.rule,
        level=assignment.level,
        level_name=service.level_name(path, assignment.level),
        assignee=holder(agent),
        strategy=last.strategy if last else None,
        reason=last.reason if last else None,
        candidates=expand(last.candidates) if last else [],
        previous_holders=assignment.holders or [],
        executive=assignment.executive,
        severity=assignment.severity,
        status=assignment.status,
        updated_at=assignment.updated_at,
        history=[HistoryEntry.model_validate(h) for h in history],
    )


@router.post("/tickets/{ticket_id}/escalate", response_model=EscalateOut,
             tags=["assignments"], dependencies=[write],
             summary="Escalate by hand: functional to a team, hierarchical up, or to a level")
async def escalate(ticket_id: str, body: EscalateIn, session: SessionDep) -> EscalateOut:
    assignment = await service.get_assignment(session, ticket_id)
    if assignment is None or assignment.status != "open":
        raise Problem(404, "Not Found", f"no open assignment for ticket {ticket_id}")
    path = await service.path_of(session, assignment)
    names = [str(level["name"]) for level in path.levels]
    if body.level is not None:
        if body.level not in names:
            raise Problem(422, "Unprocessable Content", f"body.level: path {path.id} has no "
                          f"level '{body.level}' (levels: {', '.join(names)})")
        target: int | None = names.index(body.level)
    elif body.kind == EscalationKind.functional:
        teams = [level.get("team") for level in path.levels]
        if body.team not in teams:
            raise Problem(422, "Unprocessable Content", f"body.team: no level of path "
                          f"{path.id} is served by team '{body.team}'")
        target = teams.index(body.team)
    else:
        target = None
    kind = body.kind or EscalationKind(path.levels[target or 0].get("kind", "functional"))
    await service.escalate(session, ticket_id,
                           service.Move("manual", f"escalated by hand: {body.reason}", kind),
                           to_level=target)
    await session.flush()
    agent = await session.get(Agent, assignment.agent_id) if assignment.agent_id else None
    return EscalateOut(ticket_id=ticket_id, level=assignment.level,
                       level_name=service.level_name(path, assignment.level),
                       assignee=holder(agent))


@router.get("/agents", response_model=AgentPage, tags=["agents"], dependencies=[read])
async def list_agents(
    session: SessionDep,
    team: str | None = None,
    available: bool | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> AgentPage:
    rows, next_cursor = await list_by_id(
        session, Agent, limit=limit, cursor=cursor, team_id=team, available=available)
    return AgentPage(items=[agent_out(a) for a in rows], next_cursor=next_cursor)


@router.get("/teams", response_model=TeamPage, tags=["teams"], dependencies=[read])
async def list_teams(
    session: SessionDep, department: str | None = None, cursor: str | None = None,
    limit: Limit = 100,
) -> TeamPage:
    rows, next_cursor = await list_by_id(
        session, Team, limit=limit, cursor=cursor, department=department)
    return TeamPage(items=[team_out(t) for t in rows], next_cursor=next_cursor)


@router.get("/escalation-paths", response_model=EscalationPathPage, tags=["escalation paths"],
            dependencies=[read])
async def list_escalation_paths(
    session: SessionDep, cursor: str | None = None, limit: Limit = 100
) -> EscalationPathPage:
    rows, next_cursor = await list_by_id(session, EscalationPath, limit=limit, cursor=cursor)
    return EscalationPathPage(items=[path_out(p) for p in rows], next_cursor=next_cursor)


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
