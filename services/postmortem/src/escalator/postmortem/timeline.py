"""Reading a ticket's stored events: one-line summaries and the post-mortem's measures.

Pure functions over already-loaded events, so they are computed at read time (late
events count as soon as they are stored) and tested without a database or broker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from escalator.postmortem.calendar import business_seconds
from escalator.postmortem.config import BusinessHours
from escalator.postmortem.schemas import LevelHold, Measures


@dataclass(frozen=True)
class Entry:
    """One timeline event as read back: ``data`` is the event payload as a dict."""

    event_id: str
    type: str
    time: datetime
    data: Mapping[str, Any]
    source: str = ""


def ordered(entries: Iterable[Entry]) -> list[Entry]:
    """Event time, then id: a total order, so equal timestamps read the same every time."""
    return sorted(entries, key=lambda e: (e.time, e.event_id))


def _holder(data: Mapping[str, Any], key: str) -> str:
    holder = data.get(key)
    return holder["name"] if isinstance(holder, Mapping) and "name" in holder else "nobody"


def summarize(entry: Entry) -> str:
    """A line a reviewer can scan; unknown types fall back to the type name."""
    d = entry.data
    match entry.type:
        case "ticket.created":
            return f"{d.get('severity')} ticket opened via {d.get('channel')}: {d.get('subject')}"
        case "ticket.updated":
            return f"ticket updated (severity {d.get('severity')})"
        case "ticket.acknowledged" | "ticket.resolved" | "ticket.closed":
            return f"ticket {entry.type.removeprefix('ticket.')}"
        case "ticket.assigned":
            return (f"assigned to {_holder(d, 'assignee')} at {d.get('level_name')} "
                    f"({d.get('strategy')}: {d.get('reason')})")
        case "ticket.escalated":
            return (f"{d.get('kind')} escalation {d.get('from_level_name')} -> "
                    f"{d.get('to_level_name')}, now {_holder(d, 'to_assignee')} "
                    f"({d.get('trigger')}: {d.get('reason')})")
        case "sla.warning":
            return f"{d.get('clock')} SLA warning, due {d.get('due_at')}"
        case "sla.breached":
            return f"{d.get('clock')} SLA breached, {d.get('lateness_seconds', 0):.0f}s late"
        case "notification.sent":
            return (f"{d.get('channel')} notification to {d.get('recipient')} about "
                    f"{d.get('about_event_type')}")
        case "notification.failed":
            return (f"{d.get('channel')} notification to {d.get('recipient')} about "
                    f"{d.get('about_event_type')} failed: {d.get('error')}")
    return entry.type


def _opened_at(events: list[Entry]) -> datetime | None:
    """ticket.created's time; else the ``created_at`` any ticket snapshot carries, so a
    timeline that missed the creation (e.g. events older than the service) still measures."""
    for e in events:
        if e.type == "ticket.created":
            return e.time
    for e in events:
        if e.type.startswith("ticket.") and isinstance(e.data.get("created_at"), str):
            return datetime.fromisoformat(e.data["created_at"])
    return None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def _business(hours: BusinessHours | None, start: datetime | None,
              end: datetime | None) -> float | None:
    if hours is None or start is None or end is None:
        return None
    return business_seconds(hours, start, end)


def level_holds(events: list[Entry]) -> list[LevelHold]:
    """Who held the ticket at which level, from each assignment or escalation until the
    next one, and the last until the ticket's final close (or the last event)."""
    changes: list[tuple[datetime, int, str, str | None]] = []
    for e in events:
        if e.type == "ticket.assigned":
            level = int(e.data.get("level", 0))
            changes.append((e.time, level, str(e.data.get("level_name") or f"L{level + 1}"),
                            _name(e.data, "assignee")))
        elif e.type == "ticket.escalated":
            level = int(e.data.get("to_level", 0))
            changes.append((e.time, level, str(e.data.get("to_level_name") or f"L{level + 1}"),
                            _name(e.data, "to_assignee")))
    if not changes:
        return []
    closes = [e.time for e in events if e.type == "ticket.closed"]
    end_of_story = closes[-1] if closes else events[-1].time
    holds: list[LevelHold] = []
    for i, (start, level, name, who) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else max(end_of_story, start)
        if holds and holds[-1].level == level and holds[-1].assignee == who:
            holds[-1] = holds[-1].model_copy(update={"end": end,
                                                     "seconds": (end - holds[-1].start)
                                                     .total_seconds()})
            continue
        holds.append(LevelHold(level=level, level_name=name, assignee=who, start=start,
                               end=end, seconds=(end - start).total_seconds()))
    return holds


def _name(data: Mapping[str, Any], key: str) -> str | None:
    holder = data.get(key)
    return str(holder["name"]) if isinstance(holder, Mapping) and "name" in holder else None


def measure(entries: Iterable[Entry], hours: BusinessHours | None = None) -> Measures:
    """The post-mortem's figures for one ticket's events, in any order.

    Business-time figures need the configured business hours; without them they are null.
    """
    events = ordered(entries)
    opened = _opened_at(events)
    first_ack = next((e.time for e in events if e.type == "ticket.acknowledged"), None)
    last_resolve = next((e.time for e in reversed(events) if e.type == "ticket.resolved"), None)
    last_close = next((e.time for e in reversed(events) if e.type == "ticket.closed"), None)
    assigned = [e for e in events if e.type == "ticket.assigned"]
    escalated = [e for e in events if e.type == "ticket.escalated"]
    levels = [int(e.data.get("level", 0)) for e in assigned]
    levels += [int(e.data.get("to_level", 0)) for e in escalated]
    holds = level_holds(events)
    at_level: dict[str, float] = {}
    for hold in holds:
        at_level[hold.level_name] = at_level.get(hold.level_name, 0.0) + hold.seconds
    notifications = [e for e in events if e.type.startswith("notification.")]
    return Measures(
        time_to_first_response_seconds=_seconds(opened, first_ack),
        time_to_first_response_business_seconds=_business(hours, opened, first_ack),
        time_to_resolution_seconds=_seconds(opened, last_resolve),
        time_to_resolution_business_seconds=_business(hours, opened, last_resolve),
        time_to_close_seconds=_seconds(opened, last_close),
        levels_reached=max(levels) + 1 if levels else 0,
        time_at_level_seconds=at_level,
        level_holds=holds,
        escalations=dict(Counter(str(e.data.get("kind")) for e in escalated)),
        sla_breaches=dict(Counter(str(e.data.get("clock")) for e in events
                                  if e.type == "sla.breached")),
        reassignments=max(len(assigned) - 1, 0),
        notifications_sent=sum(e.type == "notification.sent" for e in events),
        notifications_failed=sum(e.type == "notification.failed" for e in events),
        customer_replies=sum(e.type == "ticket.customer_replied" for e in events),
        channels_used=sorted({str(e.data["channel"]) for e in events
                              if e.type.startswith("ticket.") and e.data.get("channel")}),
        notification_channels=sorted({str(e.data.get("channel")) for e in notifications}),
    )
