"""Router's REST API: who holds what, and the roster and paths routing draws on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from escalator.router import service
from escalator.router.models import Agent, EscalationPath, Team
from escalator.router.schemas import (
    AgentOut,
    AgentPage,
    AssignmentOut,
    EscalationPathOut,
    EscalationPathPage,
    HistoryEntry,
    TeamOut,
    TeamPage,
)
from escalator.shared.app import SessionDep
from escalator.shared.auth import require

router = APIRouter(prefix="/v1")
read = require("router:read")

Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/assignments/{ticket_id}", response_model=AssignmentOut, tags=["assignments"],
            dependencies=[read], summary="Who holds a ticket, at which level, and how it got there")
async def get_assignment(ticket_id: str, session: SessionDep) -> AssignmentOut:
    assignment, path, agent, history = await service.assignment_view(session, ticket_id)
    return AssignmentOut(
        ticket_id=assignment.ticket_id,
        path=path.id,
        level=assignment.level,
        level_name=service.level_name(path, assignment.level),
        assignee=service.holder(agent),
        severity=assignment.severity,
        status=assignment.status,
        updated_at=assignment.updated_at,
        history=[HistoryEntry.model_validate(h) for h in history],
    )


@router.get("/agents", response_model=AgentPage, tags=["agents"], dependencies=[read])
async def list_agents(
    session: SessionDep,
    team: str | None = None,
    available: bool | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> AgentPage:
    rows, next_cursor = await service.list_by_id(
        session, Agent, limit=limit, cursor=cursor, team_id=team, available=available
    )
    loads = await service.open_counts(session, [a.id for a in rows])
    items = [
        AgentOut(id=a.id, name=a.name, email=a.email, team=a.team_id, role=a.role,
                 available=a.available, max_open_tickets=a.max_open_tickets,
                 open_assignments=loads.get(a.id, 0))
        for a in rows
    ]
    return AgentPage(items=items, next_cursor=next_cursor)


@router.get("/teams", response_model=TeamPage, tags=["teams"], dependencies=[read])
async def list_teams(
    session: SessionDep, department: str | None = None, cursor: str | None = None,
    limit: Limit = 100,
) -> TeamPage:
    rows, next_cursor = await service.list_by_id(
        session, Team, limit=limit, cursor=cursor, department=department
    )
    return TeamPage(items=[TeamOut.model_validate(t) for t in rows], next_cursor=next_cursor)


@router.get("/escalation-paths", response_model=EscalationPathPage, tags=["escalation paths"],
            dependencies=[read])
async def list_escalation_paths(
    session: SessionDep, cursor: str | None = None, limit: Limit = 100
) -> EscalationPathPage:
    rows, next_cursor = await service.list_by_id(session, EscalationPath, limit=limit,
                                                  cursor=cursor)
    return EscalationPathPage(items=[EscalationPathOut.model_validate(p) for p in rows],
                              next_cursor=next_cursor)
