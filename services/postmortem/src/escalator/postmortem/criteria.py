"""Was a closed ticket an escalation? Only those get a post-mortem.

Decided from the ticket's stored timeline plus the close's snapshot, so the answer uses
every topic. Topics are consumed independently, so an escalation or breach may land
after the close: the handlers ask again when such an event arrives for a closed ticket
that has no post-mortem yet (see ``service.reconsider``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from escalator.postmortem.config import Criteria
from escalator.postmortem.timeline import Entry

#: Event types that can turn a closed ticket into an escalation after the fact.
DECISIVE = frozenset({"ticket.assigned", "ticket.escalated", "sla.breached",
                      "ticket.escalation_requested"})


def reasons(criteria: Criteria, entries: Iterable[Entry],
            snapshot: Mapping[str, Any] | None) -> list[str]:
    """The criteria this ticket meets, in a fixed order; empty means "no post-mortem"."""
    events = list(entries)
    found: list[str] = []
    if criteria.escalated_past_first_level and _max_level(events) > 0:
        found.append("escalated_past_first_level")
    if criteria.any_sla_breach and any(e.type == "sla.breached" for e in events):
        found.append("sla_breach")
    severities = {str(s) for s in criteria.severities}
    if snapshot is not None and str(snapshot.get("severity")) in severities:
        found.append(f"severity_{snapshot.get('severity')}")
    if criteria.executive and _executive(events, snapshot):
        found.append("executive_escalation")
    return found


def _max_level(events: list[Entry]) -> int:
    levels = [int(e.data.get("level", 0)) for e in events if e.type == "ticket.assigned"]
    levels += [int(e.data.get("to_level", 0)) for e in events if e.type == "ticket.escalated"]
    return max(levels, default=0)


def _executive(events: list[Entry], snapshot: Mapping[str, Any] | None) -> bool:
    if snapshot is not None and snapshot.get("executive"):
        return True
    for e in events:
        if e.type == "ticket.escalation_requested" and e.data.get("kind") == "executive":
            return True
        if e.type in {"ticket.escalated", "ticket.assigned"} and e.data.get("executive"):
            return True
        if e.type == "ticket.escalated" and e.data.get("trigger") == "executive":
            return True
    return False
