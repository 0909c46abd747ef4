"""Working hours: a non-urgent internal message waits for the recipient's next working
hour in their own time zone; urgent ones go at once.

Urgent means someone must act now: a critical ticket, an executive escalation, or a
breach on a critical ticket. Customers are not held back (they chose to write to us),
and people without a known zone are reached at once rather than guessed at.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from escalator.shared.config import WallTime


class WorkingHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: WallTime = time(9, 0)
    end: WallTime = time(18, 0)
    #: ISO weekdays (1 = Monday ... 7 = Sunday).
    days: list[int] = Field(default=[1, 2, 3, 4, 5], min_length=1)

    @model_validator(mode="after")
    def _sane(self) -> WorkingHours:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        if any(d < 1 or d > 7 for d in self.days):
            raise ValueError("days are ISO weekdays 1..7")
        return self


def is_urgent(kinds: frozenset[str] | set[str], severity: str | None) -> bool:
    return severity == "critical" or "executive_escalation" in kinds


def next_working_time(now: datetime, zone: str | None, hours: WorkingHours) -> datetime:
    """``now`` when within working hours in ``zone``, else the start of the next
    working period (in UTC, as stored). Bounded: at most eight days are examined."""
    if zone is None:
        return now
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return now
    local = now.astimezone(tz)
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        if day.isoweekday() not in hours.days:
            continue
        opens = datetime.combine(day, hours.start, tz)
        closes = datetime.combine(day, hours.end, tz)
        if offset == 0 and opens <= local < closes:
            return now
        if local < opens:
            return opens.astimezone(now.tzinfo)
    return now
