"""The ``router:`` section of the versioned YAML file, and how it reaches the tables.

The same ``RouterConfig`` model checks the file at start-up and every REST change (the
API rebuilds the whole configuration from the tables, applies the change, and validates
the result), so both refuse the same mistakes with the same message naming the place.
Loading upserts by id: git is the source of truth for the entries it names; entries it
does not name (created through the API) are left alone. For an agent, optional fields the
file leaves out (``available``, ``max_open_tickets``, ``role``...) keep their stored value
on later starts, so a restart does not put an agent who went off shift back into rotation.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router.models import Agent, ConfigVersion, EscalationPath, PathRule, Team
from escalator.router.settings import RouterSettings
from escalator.shared.app import Runtime
from escalator.shared.config import ConfigError, TimeZoneName, WallTime, load_section
from escalator.shared.events import EscalationKind, Severity

log = logging.getLogger(__name__)

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100,
                                      pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100,
                                       to_lower=True)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Strategy = Literal["least_loaded", "round_robin", "skills"]


def _listify(value: Any) -> Any:
    """A rule may say ``severity: critical`` or ``severity: [critical, high]``."""
    return [value] if isinstance(value, str) else value


OneOrMany = Annotated[list[Tag], BeforeValidator(_listify), Field(min_length=1)]


class _Entry(BaseModel):
    # A misspelt key (``max_open_ticket``) must fail loudly, not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class TeamConfig(_Entry):
    id: Id
    name: Name
    department: Name | None = None
    lead: Id | None = Field(default=None, description="Supervisor's agent id")
    skills: list[Tag] = []


class ShiftConfig(_Entry):
    days: list[Day] = Field(min_length=1)
    start: WallTime
    end: WallTime = Field(description="Before start means the shift runs past midnight")


class AgentConfig(_Entry):
    id: Id
    name: Name
    email: EmailStr
    team: Id
    role: Literal["agent", "specialist", "supervisor", "manager", "executive"] = "agent"
    available: bool = True
    max_open_tickets: int = Field(default=20, ge=1)
    skills: list[Tag] = []
    languages: list[Tag] = []
    timezone: TimeZoneName = "UTC"
    shifts: list[ShiftConfig] = []
    chat_handle: Name | None = None



class LevelConfig(_Entry):
    name: Name
    team: Id | None = None
    role: Name | None = None
    agents: list[Id] = Field(default=[], description="Named people; overrides team/role")
    kind: EscalationKind = EscalationKind.functional
    strategy: Strategy = "least_loaded"
    ack_timeout_seconds: float | None = Field(default=None, gt=0)
    executive: bool = Field(default=False, description="The level executive escalations go to")


class PathConfig(_Entry):
    id: Id
    name: Name
    default: bool = False
    repeat: int = Field(default=0, ge=0, le=10)
    on_empty: Literal["wait", "skip"] = "wait"
    levels: list[LevelConfig] = Field(min_length=1)


class RuleMatch(_Entry):
    severity: Annotated[list[Severity], BeforeValidator(_listify)] | None = None
    category: OneOrMany | None = None
    channel: OneOrMany | None = None
    tier: OneOrMany | None = None
    language: OneOrMany | None = None
    executive: bool | None = None


class PathRuleConfig(_Entry):
    id: Id
    path: Id
    match: RuleMatch = RuleMatch()


def level_members(level: LevelConfig | dict[str, Any], agents: list[Any]) -> list[Any]:
    """The agents a level targets: named people, else everyone matching its team and role.

    ``agents`` are config entries or rows; both have ``id``, ``role`` and a team."""
    if isinstance(level, dict):
        level = LevelConfig.model_validate(level)
    if level.agents:
        return [a for a in agents if a.id in level.agents]
    return [a for a in agents
            if (level.team is None or _team_of(a) == level.team)
            and (level.role is None or a.role == level.role)]


def _team_of(agent: Any) -> str:
    return str(agent.team if isinstance(agent, AgentConfig) else agent.team_id)


class RouterConfig(_Entry):
    teams: list[TeamConfig] = []
    agents: list[AgentConfig] = []
    escalation_paths: list[PathConfig] = []
    path_rules: list[PathRuleConfig] = []

    @model_validator(mode="after")
    def _consistent(self) -> RouterConfig:
        problems = self.problems()
        if problems:
            # A custom error type keeps pydantic's "Value error, " prefix out of the message.
            raise PydanticCustomError("inconsistent_config", "; ".join(problems))
        return self

    def problems(self) -> list[str]:
        """Every cross-reference mistake, each naming its place."""
        problems: list[str] = []
        for kind, ids in (
            ("team", [t.id for t in self.teams]),
            ("agent", [a.id for a in self.agents]),
            ("escalation path", [p.id for p in self.escalation_paths]),
            ("path rule", [r.id for r in self.path_rules]),
        ):
            problems += [f"{kind} id '{i}' is used {n} times"
                         for i, n in Counter(ids).items() if n > 1]
        teams, agents = {t.id for t in self.teams}, {a.id for a in self.agents}
        paths = {p.id for p in self.escalation_paths}
        problems += [f"agent '{a.id}' names unknown team '{a.team}'"
                     for a in self.agents if a.team not in teams]
        problems += [f"team '{t.id}' names unknown lead agent '{t.lead}'"
                     for t in self.teams if t.lead is not None and t.lead not in agents]
        for path in self.escalation_paths:
            for n, level in enumerate(path.levels):
                place = f"escalation path '{path.id}' level {n} ('{level.name}')"
                if level.team is not None and level.team not in teams:
                    problems.append(f"{place} names unknown team '{level.team}'")
                    continue
                problems += [f"{place} names unknown agent '{a}'"
                             for a in level.agents if a not in agents]
                if level.team is None and level.role is None and not level.agents:
                    problems.append(f"{place} names no target (team, role or agents)")
                elif not level_members(level, self.agents) and not set(level.agents) - agents:
                    problems.append(f"{place} is empty: no agent matches its target")
        problems += [f"path rule '{r.id}' names unknown escalation path '{r.path}'"
                     for r in self.path_rules if r.path not in paths]
        defaults = [p.id for p in self.escalation_paths if p.default]
        if self.escalation_paths and len(defaults) != 1:
            problems.append(
                f"exactly one escalation path must be the default (found {len(defaults)}"
                f"{': ' + ', '.join(defaults) if defaults else ''})"
            )
        return problems


def load_config(settings: RouterSettings) -> RouterConfig:
    """The validated section; raises ``ConfigError`` naming every problem."""
    return load_section(settings.config_file, "router", RouterConfig)


def team_values(team: TeamConfig) -> dict[str, Any]:
    return {"name": team.name, "department": team.department, "lead_id": team.lead,
            "skills": team.skills}


def agent_values(agent: AgentConfig, *, only_set: bool = False) -> dict[str, Any]:
    values = agent.model_dump(mode="json", exclude_unset=only_set, exclude={"id", "team"})
    values["team_id"] = agent.team
    return values


def path_values(path: PathConfig) -> dict[str, Any]:
    return {"name": path.name, "is_default": path.default, "repeat": path.repeat,
            "on_empty": path.on_empty,
            "levels": [level.model_dump(mode="json", exclude_defaults=True)
                       | {"name": level.name, "kind": level.kind.value}
                       for level in path.levels]}


async def upsert(session: AsyncSession, model: type[Any], id_: str,
                 values: dict[str, Any]) -> None:
    row = await session.get(model, id_) or model(id=id_)
    for name, value in values.items():
        setattr(row, name, value)
    session.add(row)


async def replace_rules(session: AsyncSession, rules: list[PathRuleConfig]) -> None:
    await session.execute(delete(PathRule))
    await session.flush()
    session.add_all(PathRule(position=n, id=r.id, path_id=r.path,
                             match=r.match.model_dump(mode="json", exclude_none=True))
                    for n, r in enumerate(rules))


async def set_default(session: AsyncSession, path_id: str) -> None:
    """One default path in the tables too, even if the API had set another."""
    await session.execute(
        update(EscalationPath).where(EscalationPath.id != path_id).values(is_default=False))


async def bump(session: AsyncSession) -> None:
    """Mark the roster changed, in the caller's transaction: every replica reloads its
    in-memory copy (``catalog``) before its next decision once that transaction commits."""
    await session.execute(update(ConfigVersion).values(version=ConfigVersion.version + 1))


async def apply_config(session: AsyncSession, config: RouterConfig,
                       raw: dict[str, Any] | None = None) -> None:
    """Upsert the file's teams, agents and paths by id (teams first: agents refer to them);
    the rule list is replaced whole when the file has one."""
    for team in config.teams:
        await upsert(session, Team, team.id, team_values(team))
    await session.flush()
    for agent in config.agents:
        existing = await session.get(Agent, agent.id)
        await upsert(session, Agent, agent.id, agent_values(agent, only_set=existing is not None))
    for path in config.escalation_paths:
        await upsert(session, EscalationPath, path.id, path_values(path))
    if raw is None or "path_rules" in raw:
        await replace_rules(session, config.path_rules)
    default = next((p.id for p in config.escalation_paths if p.default), None)
    if default is not None:
        await set_default(session, default)
    await bump(session)


async def load_on_startup(runtime: Runtime) -> None:
    """Start-up hook: refuse to start on an invalid file, else bring the tables in line."""
    assert isinstance(runtime.settings, RouterSettings)
    config = load_config(runtime.settings)
    async with runtime.sessionmaker() as session, session.begin():
        await apply_config(session, config, raw=config.model_dump(exclude_unset=True))
    log.info("router configuration loaded: %d teams, %d agents, %d escalation paths, "
             "%d path rules", len(config.teams), len(config.agents),
             len(config.escalation_paths), len(config.path_rules))


__all__ = ["ConfigError", "RouterConfig", "apply_config", "load_config", "load_on_startup"]
