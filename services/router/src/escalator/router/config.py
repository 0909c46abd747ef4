"""The ``router:`` section of the versioned YAML file, and how it reaches the tables.

Validation happens before anything is written, so a bad file changes nothing and stops
start-up with every offending entry named. Loading upserts by id: git is the source of
truth for the entries it names; entries it does not name (created through the API) are
left alone. For an agent, optional fields the file leaves out (``available``,
``max_open_tickets``, ``role``) keep their stored value on later starts, so a restart
does not put an agent who went off shift back into rotation.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router.models import Agent, EscalationPath, Team
from escalator.router.settings import RouterSettings
from escalator.shared.app import Runtime
from escalator.shared.config import ConfigError, load_section
from escalator.shared.events import EscalationKind

log = logging.getLogger(__name__)

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100,
                                      pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Entry(BaseModel):
    # A misspelt key (``max_open_ticket``) must fail loudly, not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class TeamConfig(_Entry):
    id: Id
    name: Name
    department: Name | None = None


class AgentConfig(_Entry):
    id: Id
    name: Name
    email: EmailStr
    team: Id
    role: Name = "agent"
    available: bool = True
    max_open_tickets: int = Field(default=20, ge=1)


class LevelConfig(_Entry):
    name: Name
    team: Id
    kind: EscalationKind = EscalationKind.functional


class PathConfig(_Entry):
    id: Id
    name: Name
    default: bool = False
    levels: list[LevelConfig] = Field(min_length=1)


class RouterConfig(_Entry):
    teams: list[TeamConfig] = []
    agents: list[AgentConfig] = []
    escalation_paths: list[PathConfig] = []

    @model_validator(mode="after")
    def _consistent(self) -> RouterConfig:
        problems: list[str] = []
        for kind, ids in (
            ("team", [t.id for t in self.teams]),
            ("agent", [a.id for a in self.agents]),
            ("escalation path", [p.id for p in self.escalation_paths]),
        ):
            problems += [f"{kind} id '{i}' is used {n} times"
                         for i, n in Counter(ids).items() if n > 1]
        teams = {t.id for t in self.teams}
        problems += [f"agent '{a.id}' names unknown team '{a.team}'"
                     for a in self.agents if a.team not in teams]
        problems += [
            f"escalation path '{p.id}' level {n} ('{level.name}') names unknown team "
            f"'{level.team}'"
            for p in self.escalation_paths
            for n, level in enumerate(p.levels)
            if level.team not in teams
        ]
        defaults = [p.id for p in self.escalation_paths if p.default]
        if self.escalation_paths and len(defaults) != 1:
            problems.append(
                f"exactly one escalation path must be the default (found {len(defaults)}"
                f"{': ' + ', '.join(defaults) if defaults else ''})"
            )
        if problems:
            # A custom error type keeps pydantic's "Value error, " prefix out of the message.
            raise PydanticCustomError("inconsistent_config", "; ".join(problems))
        return self


def load_config(settings: RouterSettings) -> RouterConfig:
    """The validated section; raises ``ConfigError`` naming every problem."""
    return load_section(settings.config_file, "router", RouterConfig)


async def apply_config(session: AsyncSession, config: RouterConfig) -> None:
    """Upsert the file's teams, agents and paths by id (teams first: agents refer to them)."""
    for team in config.teams:
        row = await session.get(Team, team.id) or Team(id=team.id)
        row.name, row.department = team.name, team.department
        session.add(row)
    await session.flush()
    for agent in config.agents:
        existing = await session.get(Agent, agent.id)
        values = agent.model_dump(exclude_unset=existing is not None, exclude={"id", "team"})
        row = existing or Agent(id=agent.id)
        row.team_id = agent.team
        for name, value in values.items():
            setattr(row, name, str(value) if name == "email" else value)
        session.add(row)
    for path in config.escalation_paths:
        row = await session.get(EscalationPath, path.id) or EscalationPath(id=path.id)
        row.name, row.is_default = path.name, path.default
        row.levels = [level.model_dump(mode="json") for level in path.levels]
        session.add(row)
    default = next((p.id for p in config.escalation_paths if p.default), None)
    if default is not None:
        # One default path in the tables too, even if the API had set another.
        await session.execute(
            update(EscalationPath).where(EscalationPath.id != default).values(is_default=False)
        )


async def load_on_startup(runtime: Runtime) -> None:
    """Start-up hook: refuse to start on an invalid file, else bring the tables in line."""
    assert isinstance(runtime.settings, RouterSettings)
    config = load_config(runtime.settings)
    async with runtime.sessionmaker() as session, session.begin():
        await apply_config(session, config)
    log.info("router configuration loaded: %d teams, %d agents, %d escalation paths",
             len(config.teams), len(config.agents), len(config.escalation_paths))


__all__ = ["ConfigError", "RouterConfig", "apply_config", "load_config", "load_on_startup"]
