"""Paths and rules as routing reads them: cached per database for a second.

Every routing decision needs the rule list and its path; reading them each time cost
three round trips of a decision's ten. They change rarely (YAML at start-up, REST now and
then), so each process keeps an immutable copy per engine for ``TTL`` seconds; a REST change
on this replica clears it at once, other replicas see it within ``TTL``. Agents, loads and
round-robin cursors are never cached: they are what replicas compete for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router.models import Agent, EscalationPath, PathRule, Team

TTL = 1.0


@dataclass(frozen=True)
class PathInfo:
    """An escalation path, detached from any session."""

    id: str
    levels: list[dict[str, Any]]
    repeat: int
    on_empty: str
    is_default: bool


@dataclass(frozen=True)
class Catalog:
    paths: dict[str, PathInfo]
    rules: list[tuple[str, str, dict[str, Any]]]  #: (rule id, path id, match), in order
    default: PathInfo | None
    supervisors: dict[str, str]  #: team id → its lead, else its first supervisor/manager
    loaded: float


_cache: dict[int, Catalog] = {}


def forget() -> None:
    """Drop every cached copy (after a REST change in this process)."""
    _cache.clear()


async def catalog(session: AsyncSession) -> Catalog:
    key = id(session.bind)
    found = _cache.get(key)
    if found is not None and time.monotonic() - found.loaded < TTL:
        return found
    paths = {p.id: PathInfo(p.id, list(p.levels), p.repeat, p.on_empty, p.is_default)
             for p in (await session.scalars(select(EscalationPath))).all()}
    rules = [(r.id, r.path_id, dict(r.match)) for r in
             (await session.scalars(select(PathRule).order_by(PathRule.position))).all()]
    default = next((paths[i] for i in sorted(paths) if paths[i].is_default), None)
    supervisors: dict[str, str] = {}
    for agent_id, team_id in (await session.execute(
            select(Agent.id, Agent.team_id).where(Agent.role.in_(["supervisor", "manager"]))
            .order_by(Agent.id.desc()))).all():
        supervisors[team_id] = agent_id  # descending: the first by id wins
    for team_id, lead_id in (await session.execute(select(Team.id, Team.lead_id))).all():
        if lead_id:
            supervisors[team_id] = lead_id
    _cache[key] = found = Catalog(paths, rules, default, supervisors, time.monotonic())
    return found
