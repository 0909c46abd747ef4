"""Business time: how much of an interval falls inside the configured working hours.

Windows are local wall-clock times in the calendar's zone, so a DST change moves them
with the clock as people expect; holidays are local dates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from escalator.postmortem.config import BusinessHours

#: Upper bound on the days walked for one interval (about ten years): a bad timestamp
#: must not turn a read into an endless loop.
MAX_DAYS = 3660


def business_seconds(hours: BusinessHours, start: datetime, end: datetime) -> float:
    """Seconds of [start, end) that lie inside working windows; 0 if end <= start."""
    if end <= start:
        return 0.0
    zone = ZoneInfo(hours.timezone)
    holidays = set(hours.holidays)
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    total = 0.0
    for _ in range(MAX_DAYS):
        if day > last:
            break
        window = hours.window(day.weekday())
        if window is not None and day not in holidays:
            open_at = datetime.combine(day, window[0], tzinfo=zone).astimezone(UTC)
            close_at = datetime.combine(day, window[1], tzinfo=zone).astimezone(UTC)
            overlap = (min(end, close_at) - max(start, open_at)).total_seconds()
            total += max(overlap, 0.0)
        day += timedelta(days=1)
    return total
