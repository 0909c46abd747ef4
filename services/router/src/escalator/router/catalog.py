"""The roster as routing reads it: teams, agents' static attributes, paths and rules, in
memory, checked against the database's config version on every decision.

A decision used to spend most of its round trips re-reading what rarely changes. Now each
process keeps one immutable ``Catalog`` per engine; every REST or YAML change bumps the
``config_version`` row in its own transaction (``config.bump``), and decisions read that
number in the statements they need anyway (which tickets are routed, locking the agents'
rows: ``intake``, ``slots.lock``), reloading the catalog when it moved. So a committed
change is used by the next decision on every replica, at no extra round trip. Loads,
availability as stored, and round-robin cursors are not cached: they are what replicas
compete for, and they are read from the rows a decision locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router.config import level_members
from escalator.router.models import Agent, ConfigVersion, EscalationPath, PathRule, Team
from escalator.shared.events import Holder

config_version = cast(Table, ConfigVersion.__table__)


@dataclass(frozen=True)
class AgentInfo:
    """An agent's static attributes (everything but the load), detached from any session;
    attribute names match the ``Agent`` row so the same helpers read both."""

    id: str
    name: str
    email: str
    team_id: str
    role: str
    available: bool
    max_open_tickets: int
    skills: frozenset[str]
    languages: tuple[str, ...]
    timezone: str
    shifts: tuple[dict[str, Any], ...]
    chat_handle: str | None

    @cached_property
    def holder(self) -> Holder:  # built once per roster load, not once per event
        return Holder(agent_id=self.id, name=self.name, email=self.email, team=self.team_id,
                      role=self.role, timezone=self.timezone,
                      language=self.languages[0] if self.languages else None,
                      chat_handle=self.chat_handle)


@dataclass(frozen=True)
class PathInfo:
    """An escalation path, with each level's agents (in id order) resolved once."""

    id: str
    levels: list[dict[str, Any]]
    repeat: int
    on_empty: str
    is_default: bool
    members: tuple[tuple[AgentInfo, ...], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Catalog:
    version: int
    paths: dict[str, PathInfo]
    rules: list[tuple[str, str, dict[str, Any]]]  #: (rule id, path id, match), in order
    default: PathInfo | None
    agents: dict[str, AgentInfo]
    supervisors: dict[str, AgentInfo]  #: team id → its lead, else its first supervisor/manager


_cache: dict[int, Catalog] = {}


async def catalog(session: AsyncSession) -> Catalog:
    """This engine's copy, loaded on first use; callers that must be current compare its
    ``version`` with the database's and call ``reload`` when they differ."""
    found = _cache.get(id(session.bind))
    return found if found is not None else await reload(session)


async def current(session: AsyncSession) -> Catalog:
    """The copy, checked against the database first (one small read: for the API, not
    for decisions, which get the version with their loads)."""
    known = await catalog(session)
    version = await session.scalar(select(config_version.c.version))
    return known if known.version == version else await reload(session)


async def reload(session: AsyncSession) -> Catalog:
    # The version first: a change committed between these reads makes the copy look
    # older than it is, so it is reloaded once more instead of being trusted.
    version = int(await session.scalar(select(config_version.c.version)) or 0)
    agents = {a.id: AgentInfo(
        a.id, a.name, a.email, a.team_id, a.role, a.available, a.max_open_tickets,
        frozenset(a.skills or ()), tuple(a.languages or ()), a.timezone,
        tuple(a.shifts or ()), a.chat_handle,
    ) for a in (await session.scalars(select(Agent).order_by(Agent.id))).all()}
    ordered = list(agents.values())
    paths = {p.id: PathInfo(p.id, list(p.levels), p.repeat, p.on_empty, p.is_default,
                            tuple(tuple(level_members(level, ordered)) for level in p.levels))
             for p in (await session.scalars(select(EscalationPath))).all()}
    rules = [(r.id, r.path_id, dict(r.match)) for r in
             (await session.scalars(select(PathRule).order_by(PathRule.position))).all()]
    default = next((paths[i] for i in sorted(paths) if paths[i].is_default), None)
    supervisors: dict[str, AgentInfo] = {}
    for agent in reversed(ordered):  # descending: the first by id wins
        if agent.role in ("supervisor", "manager"):
            supervisors[agent.team_id] = agent
    for team_id, lead_id in (await session.execute(select(Team.id, Team.lead_id))).all():
        if lead_id in agents:
            supervisors[team_id] = agents[lead_id]
    _cache[id(session.bind)] = found = Catalog(version, paths, rules, default, agents,
                                               supervisors)
    return found
