"""Which agent of a level gets a ticket, and why the others did not (no database here:
``slots`` reads the loads and takes the slot).

Every agent a level targets is kept with the reason it was passed over (off shift, at
capacity, held the ticket before, lacks the language...), so the decision explains
itself; ``Pick.compact`` stores that without repeating each reason's text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

from escalator.router.catalog import AgentInfo
from escalator.router.models import Agent
from escalator.shared.events import Candidate, Holder

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CANDIDATES = TypeAdapter(list[Candidate])


class Shifted(Protocol):
    @property
    def timezone(self) -> str: ...
    @property
    def shifts(self) -> Any: ...


@dataclass
class Slot:
    """An agent's row as this transaction locked it: exact until the transaction ends."""

    load: int  #: open tickets held
    available: bool
    capacity: int  #: max open tickets


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

    agent: AgentInfo | None
    reason: str
    strategy: str
    #: Every agent of the level, in id order: (agent, open tickets seen, why (not) picked).
    considered: list[tuple[AgentInfo, int, str]]
    by_turn: bool = False  #: chosen by round-robin, so the cursor must move to them

    def candidates(self) -> list[Candidate]:
        # One validation of the whole list: a level can hold hundreds of agents.
        return _CANDIDATES.validate_python([
            {"agent_id": a.id, "name": a.name, "open_tickets": load,
             "picked": a is self.agent, "reason": why} for a, load, why in self.considered])

    def compact(self) -> dict[str, Any]:
        """The explanation for the history: each distinct reason once, agents as rows."""
        index: dict[str, int] = {}
        rows = [[a.id, a.name, load, index.setdefault(why, len(index))]
                for a, load, why in self.considered]
        return {"picked": self.agent.id if self.agent else None, "reasons": list(index),
                "agents": rows}


def expand(stored: dict[str, Any] | None) -> list[Candidate]:
    """``Pick.compact`` back into candidates, for the API."""
    if not stored:
        return []
    reasons, picked = stored["reasons"], stored["picked"]
    return [Candidate(agent_id=a, name=n, open_tickets=o, picked=a == picked, reason=reasons[r])
            for a, n, o, r in stored["agents"]]


def holder(agent: Agent | AgentInfo | None) -> Holder | None:
    if agent is None or isinstance(agent, AgentInfo):
        return agent.holder if agent else None
    return Holder(agent_id=agent.id, name=agent.name, email=agent.email, team=agent.team_id,
                  role=agent.role, timezone=agent.timezone,
                  language=agent.languages[0] if agent.languages else None,
                  chat_handle=agent.chat_handle)


def on_shift(agent: Shifted, now: datetime) -> bool:
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


def _excluded(agent: AgentInfo, slot: Slot | None, now: datetime) -> str | None:
    """Why the agent cannot take a ticket now; availability and capacity as the locked row
    says (the roster's copy may be a moment older)."""
    if slot is None:
        return "no longer on the roster"
    if not slot.available:
        return "unavailable (switched off)"
    if agent.shifts and not on_shift(agent, now):
        return f"off shift ({agent.timezone})"
    if slot.load >= slot.capacity:
        return f"at capacity ({slot.load}/{slot.capacity})"
    return None


def choose(level: dict[str, Any], members: Sequence[AgentInfo], slots: Mapping[str, Slot],
           cursor: tuple[str | None, int], ask: Ask, now: datetime) -> Pick:
    """The level's strategy applied to the locked agents' rows (and round-robin cursor:
    last agent, turns), with every reason."""
    strategy = str(level.get("strategy", "least_loaded"))
    target = level.get("team") or level.get("role") or ", ".join(level.get("agents", []))
    loads: dict[str, int] = {}
    reasons: dict[str, str | None] = {}
    able: list[AgentInfo] = []
    for a in members:  # one pass: a level can hold hundreds of agents
        slot = slots.get(a.id)
        if slot is not None:
            loads[a.id] = slot.load
        reasons[a.id] = why_not = _excluded(a, slot, now)
        if why_not is None:
            able.append(a)
    fresh = [a for a in able if a.id not in ask.avoid] if ask.avoid else able
    if fresh and fresh is not able:
        for a in able:
            if a.id in ask.avoid:
                reasons[a.id] = "held this ticket before (no ping-pong)"
        able = fresh
    chosen, why = None, f"no agent available in {target}"
    sponsor = (next((a for a in able if a.email == ask.prefer_email), None)
               if ask.prefer_email else None)
    if sponsor is not None:
        chosen, why = sponsor, f"the customer's executive sponsor {sponsor.name} is on {target}"
    elif able and strategy == "skills":
        chosen, why = _by_skills(able, loads, ask, reasons, target)
    elif able and strategy == "round_robin":
        last, turns = cursor
        chosen = next((a for a in able if a.id > (last or "")), able[0])
        why = f"round-robin turn {turns + 1} in {target}: next after {last or 'start'}"
    elif able:
        chosen = min(able, key=lambda a: (loads[a.id], a.id))
        why = f"least loaded available agent in {target} ({loads[chosen.id]} open)"
    if chosen is not None and chosen.id in ask.avoid:
        why += "; held it before, but nobody else can take it"
    passed = _passed_over(strategy, chosen)
    if chosen is None and members:
        counts = [r.split(" (")[0] for r in reasons.values() if r]
        why += ": " + ", ".join(f"{counts.count(k)} {k}" for k in dict.fromkeys(counts))
    elif chosen is None:
        why = f"{target} has no agents"
    considered = [(a, loads.get(a.id, 0), why if a is chosen else reasons[a.id] or passed)
                  for a in members]
    return Pick(chosen, why, strategy, considered,
                by_turn=chosen is not None and chosen is not sponsor and strategy == "round_robin")


def _passed_over(strategy: str, chosen: AgentInfo | None) -> str:
    """Why an able agent was not the one: one text per decision (the load is beside it)."""
    if chosen is None:
        return "not picked"
    if strategy == "round_robin":
        return "not their turn"
    if strategy == "skills":
        return "weaker skills/language match or more open tickets"
    return f"more open tickets or later id than {chosen.id}"


def _by_skills(able: list[AgentInfo], loads: dict[str, int], ask: Ask,
               reasons: dict[str, str | None], target: str) -> tuple[AgentInfo, str]:
    """Speaks the ticket's language first, then has its category as a skill, then load."""

    def fit(a: AgentInfo) -> tuple[bool, bool, int, str]:
        speaks = ask.language is None or ask.language in a.languages
        skilled = ask.category is None or ask.category in a.skills
        return (not speaks, not skilled, loads[a.id], a.id)

    chosen = min(able, key=fit)
    for a in able:
        if a is not chosen and ask.language and ask.language not in a.languages:
            reasons[a.id] = f"does not speak '{ask.language}'"
        elif a is not chosen and ask.category and ask.category not in a.skills:
            reasons[a.id] = f"lacks skill '{ask.category}'"
    traits = [f"speaks '{ask.language}'" if ask.language in chosen.languages else None,
              f"has skill '{ask.category}'" if ask.category in chosen.skills else None]
    said = " and ".join(t for t in traits if t) or "no one matches; least loaded"
    return chosen, f"best skills match in {target}: {said} ({loads[chosen.id]} open)"
