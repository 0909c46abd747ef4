"""REST changes to teams, agents, escalation paths and path rules.

A change is checked against the whole configuration, not just itself: the current tables
are read back as a ``RouterConfig``, the change is applied to that copy, and the copy is
validated exactly like the YAML file. Only a valid result is written, so a change that
would leave (say) a level with nobody on it is refused with nothing applied.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router import config as cfg
from escalator.router.api import agent_out, path_out, team_out
from escalator.router.models import Agent, Assignment, EscalationPath, PathRule, Team
from escalator.router.schemas import AgentOut, EscalationPathOut, TeamOut
from escalator.shared.app import SessionDep
from escalator.shared.auth import require
from escalator.shared.problems import Problem

router = APIRouter(prefix="/v1")
write = require("router:write")
read = require("router:read")


class TeamIn(cfg.TeamConfig):
    id: cfg.Id | None = None  # type: ignore[assignment]


class AgentIn(cfg.AgentConfig):
    id: cfg.Id | None = None  # type: ignore[assignment]


class PathIn(cfg.PathConfig):
    id: cfg.Id | None = None  # type: ignore[assignment]


async def current(session: AsyncSession) -> dict[str, Any]:
    """The tables as a ``router:`` section (what the file would say to recreate them)."""
    teams = (await session.scalars(select(Team).order_by(Team.id))).all()
    agents = (await session.scalars(select(Agent).order_by(Agent.id))).all()
    paths = (await session.scalars(select(EscalationPath).order_by(EscalationPath.id))).all()
    rules = (await session.scalars(select(PathRule).order_by(PathRule.position))).all()
    return {
        "teams": [{"id": t.id, "name": t.name, "department": t.department, "lead": t.lead_id,
                   "skills": t.skills or []} for t in teams],
        "agents": [{"id": a.id, "name": a.name, "email": a.email, "team": a.team_id,
                    "role": a.role, "available": a.available,
                    "max_open_tickets": a.max_open_tickets, "skills": a.skills or [],
                    "languages": a.languages or [], "timezone": a.timezone,
                    "shifts": a.shifts or [], "chat_handle": a.chat_handle} for a in agents],
        "escalation_paths": [{"id": p.id, "name": p.name, "default": p.is_default,
                              "repeat": p.repeat, "on_empty": p.on_empty, "levels": p.levels}
                             for p in paths],
        "path_rules": [{"id": r.id, "path": r.path_id, "match": r.match} for r in rules],
    }


def validated(document: dict[str, Any]) -> cfg.RouterConfig:
    """The changed whole, or a 422 naming every place the change would break."""
    try:
        return cfg.RouterConfig.model_validate(document)
    except ValidationError as exc:
        detail = "; ".join(
            ".".join(str(p) for p in err["loc"]) + ": " + err["msg"] if err["loc"]
            else err["msg"] for err in exc.errors())
        raise Problem(422, "Invalid configuration change", detail) from exc


def _replace(entries: list[dict[str, Any]], id_: str, entry: dict[str, Any] | None
             ) -> tuple[list[dict[str, Any]], bool]:
    found = any(e["id"] == id_ for e in entries)
    kept = [e for e in entries if e["id"] != id_]
    if entry is None:
        return kept, found
    return [entry if e["id"] == id_ else e for e in entries] if found else [*kept, entry], found


def _body(body: Any, id_: str) -> dict[str, Any]:
    if body.id is not None and body.id != id_:
        raise Problem(422, "Unprocessable Content",
                      f"body.id '{body.id}' differs from the id in the path '{id_}'")
    return body.model_dump(mode="json", exclude_unset=True) | {"id": id_}


async def _change(session: AsyncSession, section: str, id_: str,
                  entry: dict[str, Any] | None) -> cfg.RouterConfig:
    await cfg.bump(session)  # every replica routes with the change from its next decision
    document = await current(session)
    document[section], found = _replace(document[section], id_, entry)
    if entry is None and not found:
        raise Problem(404, "Not Found", f"no {section[:-1].replace('_', ' ')} '{id_}'")
    return validated(document)


@router.put("/teams/{team_id}", response_model=TeamOut, tags=["teams"], dependencies=[write])
async def put_team(team_id: str, body: TeamIn, session: SessionDep) -> TeamOut:
    whole = await _change(session, "teams", team_id, _body(body, team_id))
    team = next(t for t in whole.teams if t.id == team_id)
    await cfg.upsert(session, Team, team_id, cfg.team_values(team))
    await session.flush()
    return team_out(await session.get(Team, team_id))  # type: ignore[arg-type]


@router.put("/agents/{agent_id}", response_model=AgentOut, tags=["agents"],
            dependencies=[write])
async def put_agent(agent_id: str, body: AgentIn, session: SessionDep) -> AgentOut:
    whole = await _change(session, "agents", agent_id, _body(body, agent_id))
    agent = next(a for a in whole.agents if a.id == agent_id)
    await cfg.upsert(session, Agent, agent_id, cfg.agent_values(agent))
    await session.flush()
    return agent_out(await session.get(Agent, agent_id))  # type: ignore[arg-type]


@router.put("/escalation-paths/{path_id}", response_model=EscalationPathOut,
            tags=["escalation paths"], dependencies=[write])
async def put_path(path_id: str, body: PathIn, session: SessionDep) -> EscalationPathOut:
    whole = await _change(session, "escalation_paths", path_id, _body(body, path_id))
    path = next(p for p in whole.escalation_paths if p.id == path_id)
    await cfg.upsert(session, EscalationPath, path_id, cfg.path_values(path))
    if path.default:
        await cfg.set_default(session, path_id)
    await session.flush()
    return path_out(await session.get(EscalationPath, path_id))  # type: ignore[arg-type]


@router.delete("/teams/{team_id}", status_code=204, tags=["teams"], dependencies=[write])
async def delete_team(team_id: str, session: SessionDep) -> Response:
    await _change(session, "teams", team_id, None)
    await session.delete(await session.get(Team, team_id))
    return Response(status_code=204)


@router.delete("/agents/{agent_id}", status_code=204, tags=["agents"], dependencies=[write])
async def delete_agent(agent_id: str, session: SessionDep) -> Response:
    await _change(session, "agents", agent_id, None)
    agent = await session.get(Agent, agent_id, with_for_update=True)
    assert agent is not None
    if agent.open_tickets:
        raise Problem(409, "Conflict", f"agent '{agent_id}' holds {agent.open_tickets} open "
                                       "tickets; reassign or close them first")
    # Closed assignments keep their history; only the foreign key lets go.
    await session.execute(update(Assignment).where(Assignment.agent_id == agent_id)
                          .values(agent_id=None))
    await session.delete(agent)
    return Response(status_code=204)


@router.delete("/escalation-paths/{path_id}", status_code=204, tags=["escalation paths"],
               dependencies=[write])
async def delete_path(path_id: str, session: SessionDep) -> Response:
    await _change(session, "escalation_paths", path_id, None)
    used = await session.scalar(select(func.count()).select_from(Assignment)
                                .where(Assignment.path_id == path_id))
    if used:
        raise Problem(409, "Conflict", f"escalation path '{path_id}' has {used} assignments")
    await session.delete(await session.get(EscalationPath, path_id))
    return Response(status_code=204)


@router.get("/path-rules", response_model=list[cfg.PathRuleConfig], tags=["path rules"],
            dependencies=[read], summary="Rules choosing a new ticket's path; first match wins")
async def get_rules(session: SessionDep) -> list[cfg.PathRuleConfig]:
    return validated(await current(session)).path_rules


@router.put("/path-rules", response_model=list[cfg.PathRuleConfig], tags=["path rules"],
            dependencies=[write], summary="Replace the ordered rule list as a whole")
async def put_rules(body: list[cfg.PathRuleConfig], session: SessionDep
                    ) -> list[cfg.PathRuleConfig]:
    await cfg.bump(session)
    document = await current(session)
    document["path_rules"] = [r.model_dump(mode="json") for r in body]
    whole = validated(document)
    await cfg.replace_rules(session, whole.path_rules)
    return whole.path_rules
