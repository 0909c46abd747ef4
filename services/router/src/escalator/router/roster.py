"""Who can take a ticket at a level, and which of them gets it, with the reasons.

Every agent a level targets becomes a ``Candidate`` with the reason it was passed over
(off shift, at capacity, held the ticket before, lacks the language...), so the decision
explains itself to a supervisor. Capacity and round-robin state live in the database and
are read under row locks taken in id order, so concurrent replicas serialize on the agents
they compete for instead of trusting process memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router.catalog import catalog
from escalator.router.models import Agent, RoundRobin
from escalator.shared.events import Candidate, Holder

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Ask:
    """What the ticket needs from whoever takes it."""

    language: str | None = None
    category: str | None = None
    avoid: tuple[str, ...] = ()  #: earlier holders: the no-ping-pong rule
    prefer_email: str | None = None  #: an executive sponsor, brought in when on the level


@dataclass
class Pick:
    """Outcome of one routing decision: who (maybe nobody), why, and who else was looked at."""

    agent: Agent | None
    reason: str
    strategy: str
    candidates: list[Candidate] = field(default_factory=list)
    team: str | None = None


def holder(agent: Agent | None) -> Holder | None:
    if agent is None:
        return None
    return Holder(agent_id=agent.id, name=agent.name, email=agent.email, team=agent.team_id,
                  role=agent.role, timezone=agent.timezone,
                  language=agent.languages[0] if agent.languages else None,
                  chat_handle=agent.chat_handle)


def on_shift(agent: Agent, now: datetime) -> bool:
    """Within one of the agent's weekly shifts, read in the agent's own time zone."""
    if not agent.shifts:
        return True
    local = now.astimezone(ZoneInfo(agent.timezone))
    today, yesterday = DAYS[local.weekday()], DAYS[(local.weekday() - 1) % 7]
    clock = local.time()
    for shift in agent.shifts:
        start, end = time.fromisoformat(shift["start"]), time.fromisoformat(shift["end"])
        if start <= end:
            if today in shift["days"] and start <= clock < end:
                return True
        elif (today in shift["days"] and clock >= start) or (
                yesterday in shift["days"] and clock < end):
            return True  # an overnight shift that began today or yesterday
    return False


async def level_agents(session: AsyncSession, level: dict[str, Any]) -> list[Agent]:
    """The level's agents, locked in id order (capacity and turns are decided under it)."""
    # populate_existing: rows in this session's identity map may be stale (another
    # replica's commit, or an atomic update earlier in this batch); the locked read wins.
    query = (select(Agent).order_by(Agent.id).with_for_update()
             .execution_options(populate_existing=True))
    if level.get("agents"):
        query = query.where(Agent.id.in_(level["agents"]))
    else:
        if level.get("team"):
            query = query.where(Agent.team_id == level["team"])
        if level.get("role"):
            query = query.where(Agent.role == level["role"])
    return list((await session.scalars(query)).all())


async def supervisor_of(session: AsyncSession, team_id: str | None) -> Agent | None:
    """The team's lead, else its first supervisor/manager by id (from the catalog)."""
    if team_id is None:
        return None
    agent_id = (await catalog(session)).supervisors.get(team_id)
    return await session.get(Agent, agent_id) if agent_id else None


def _excluded(agent: Agent, ask: Ask, now: datetime) -> str | None:
    if not agent.available:
        return "unavailable (switched off)"
    if not on_shift(agent, now):
        return f"off shift ({agent.timezone})"
    if agent.open_tickets >= agent.max_open_tickets:
        return f"at capacity ({agent.open_tickets}/{agent.max_open_tickets})"
    return None


async def pick(session: AsyncSession, key: str, level: dict[str, Any], ask: Ask,
               now: datetime) -> Pick:
    """Choose an agent for ``level`` by its strategy; ``key`` names its round-robin cursor."""
    strategy = str(level.get("strategy", "least_loaded"))
    target = level.get("team") or level.get("role") or ", ".join(level.get("agents", []))
    with session.no_autoflush:  # the caller's pending rows go out once, at the end
        agents = await level_agents(session, level)
    reasons = {a.id: _excluded(a, ask, now) for a in agents}
    able = [a for a in agents if reasons[a.id] is None]
    fresh = [a for a in able if a.id not in ask.avoid]
    if fresh:
        for a in able:
            if a.id in ask.avoid:
                reasons[a.id] = "held this ticket before (no ping-pong)"
        able = fresh
    chosen, why = None, f"no agent available in {target}"
    sponsor = next((a for a in able if ask.prefer_email and a.email == ask.prefer_email), None)
    if sponsor is not None:
        chosen, why = sponsor, f"the customer's executive sponsor {sponsor.name} is on {target}"
    elif able and strategy == "skills":
        chosen, why = _by_skills(able, ask, reasons, target)
    elif able and strategy == "round_robin":
        chosen, why = await _round_robin(session, key, able, target)
    elif able:
        chosen = min(able, key=lambda a: (a.open_tickets, a.id))
        why = f"least loaded available agent in {target} ({chosen.open_tickets} open)"
    if chosen is not None and chosen.id in ask.avoid:
        why += "; held it before, but nobody else can take it"
    for a in able:
        if a is not chosen and reasons[a.id] is None:
            reasons[a.id] = _passed_over(strategy, a, chosen)
    if chosen is None and agents:
        counts = [r.split(" (")[0] for r in reasons.values() if r]
        why += ": " + ", ".join(f"{counts.count(k)} {k}" for k in dict.fromkeys(counts))
    elif chosen is None:
        why = f"{target} has no agents"
    candidates = [Candidate(agent_id=a.id, name=a.name, open_tickets=a.open_tickets,
                            picked=a is chosen, reason=why if a is chosen else str(reasons[a.id]))
                  for a in agents]
    return Pick(chosen, why, strategy, candidates, level.get("team"))


def _passed_over(strategy: str, agent: Agent, chosen: Agent | None) -> str:
    if chosen is None:
        return "not picked"
    if strategy == "round_robin":
        return "not their turn"
    if strategy == "skills":
        return "weaker skills/language match or more open tickets"
    return f"more open tickets ({agent.open_tickets}) or later id than {chosen.id}"


def _by_skills(able: list[Agent], ask: Ask, reasons: dict[str, str | None],
               target: str) -> tuple[Agent, str]:
    """Speaks the ticket's language first, then has its category as a skill, then load."""

    def fit(a: Agent) -> tuple[int, int, int, str]:
        speaks = ask.language is None or ask.language in a.languages
        skilled = ask.category is None or ask.category in a.skills
        return (not speaks, not skilled, a.open_tickets, a.id)

    chosen = min(able, key=fit)
    for a in able:
        if a is not chosen and ask.language and ask.language not in a.languages:
            reasons[a.id] = f"does not speak '{ask.language}'"
        elif a is not chosen and ask.category and ask.category not in a.skills:
            reasons[a.id] = f"lacks skill '{ask.category}'"
    traits = [f"speaks '{ask.language}'" if ask.language in chosen.languages else None,
              f"has skill '{ask.category}'" if ask.category in chosen.skills else None]
    said = " and ".join(t for t in traits if t) or "no one matches; least loaded"
    return chosen, f"best skills match in {target}: {said} ({chosen.open_tickets} open)"


async def _round_robin(session: AsyncSession, key: str, able: list[Agent],
                       target: str) -> tuple[Agent, str]:
    """The next able agent after the cursor's last pick, in id order; the cursor row is
    locked, so two replicas cannot both take the same turn."""
    cursor = await session.get(RoundRobin, key, with_for_update=True, populate_existing=True)
    if cursor is None:
        cursor = RoundRobin(key=key, last_agent_id=None, turns=0)
        session.add(cursor)
    last = cursor.last_agent_id or ""
    chosen = next((a for a in able if a.id > last), able[0])
    cursor.last_agent_id, cursor.turns = chosen.id, (cursor.turns or 0) + 1
    return chosen, f"round-robin turn {cursor.turns} in {target}: next after {last or 'start'}"
