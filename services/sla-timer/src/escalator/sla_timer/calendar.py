"""Business-time arithmetic: when a target measured in business seconds falls due.

A calendar is either 24×7 (``AlwaysOpen``: business time is wall time) or business
hours (``BusinessHours``): an IANA zone, weekly shifts (several a day; a shift whose end
is not after its start runs overnight into the next day) and holidays.

Definitions, chosen so every edge has one answer:

- A shift belongs to the local date it starts on; a holiday on that date cancels it
  (an overnight shift that started the evening before a holiday still runs).
- A local wall time becomes the FIRST instant at which the zone's clock shows that
  time or later. In a spring-forward gap that is the moment the clocks jump (a shift
  "starting at 02:30" on a night when 02:00-03:00 does not exist opens at 03:00); in a
  fall-back fold it is the first occurrence (staff who started at 01:30 keep working
  through the repeated hour). A day the zone skipped entirely (Samoa, 2011-12-30) has
  no business time.
- Overlapping shifts are merged: an instant counts once.

All instants in and out are aware datetimes; results are UTC.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

#: Give up looking for business time this far ahead: a calendar whose every shift falls
#: on a holiday would otherwise search forever.
SEARCH_DAYS = 5 * 366
_MINUTE = 60


class Calendar(Protocol):
    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant at which ``seconds`` of business time have passed since ``start``."""
        ...

    def between(self, start: datetime, end: datetime) -> float:
        """Business seconds in ``[start, end)``; 0 when ``end <= start``."""
        ...


class AlwaysOpen:
    """24×7: business time is elapsed time."""

    def add(self, start: datetime, seconds: float) -> datetime:
        return start.astimezone(UTC) + timedelta(seconds=seconds)

    def between(self, start: datetime, end: datetime) -> float:
        return max((end - start).total_seconds(), 0.0)


@dataclass(frozen=True)
class Shift:
    """Open from ``start`` to ``end`` minutes after the local midnight of its day.

    ``end`` may pass 1440 (an overnight shift ends the next day).
    """

    start: int
    end: int


@dataclass
class BusinessHours:
    zone: ZoneInfo
    #: Monday=0 ... Sunday=6 -> that weekday's shifts.
    week: Mapping[int, Sequence[Shift]]
    is_holiday: Callable[[date], bool] = field(default=lambda _day: False)

    def __post_init__(self) -> None:
        if not any(self.week.get(day) for day in range(7)):
            raise ValueError("a business-hours calendar needs at least one opening interval")

    # -- the two operations --------------------------------------------------------

    def add(self, start: datetime, seconds: float) -> datetime:
        start = start.astimezone(UTC)
        if seconds <= 0:
            return start
        left = seconds
        for opens, closes in self.open_intervals(start):
            begin = max(opens, start)
            available = (closes - begin).total_seconds()
            if left <= available:
                return begin + timedelta(seconds=left)
            left -= available
        raise ValueError(f"no business time within {SEARCH_DAYS} days of {start.isoformat()}")

    def between(self, start: datetime, end: datetime) -> float:
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        total = 0.0
        if end <= start:
            return total
        for opens, closes in self.open_intervals(start, until=end):
            if opens >= end:
                break
            total += (min(closes, end) - max(opens, start)).total_seconds()
        return total

    # -- the timeline --------------------------------------------------------------

    def open_intervals(
        self, since: datetime, *, until: datetime | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """Disjoint business intervals (UTC) ending after ``since``, in time order.

        Shifts come in start order (a day's shifts all start before the next day's), so
        clipping each to where the previous one ended removes overlaps without waiting
        for a merged interval to close: a calendar open around the clock still yields
        at once.
        """
        first_day = since.astimezone(self.zone).date() - timedelta(days=2)
        covered = since
        for offset in range(SEARCH_DAYS):
            day = first_day + timedelta(days=offset)
            midnight = datetime.combine(day, datetime.min.time())
            if until is not None and self.instant(midnight) >= until:
                return
            if self.is_holiday(day):
                continue
            for shift in sorted(self.week.get(day.weekday(), ()), key=lambda s: s.start):
                opens = self.instant(midnight + timedelta(minutes=shift.start))
                closes = self.instant(midnight + timedelta(minutes=shift.end))
                opens = max(opens, covered)
                if closes > opens:
                    yield opens, closes
                    covered = closes

    def instant(self, wall: datetime) -> datetime:
        """The first UTC instant at which this zone's clock shows ``wall`` or later."""
        utc = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        if utc.astimezone(self.zone).replace(tzinfo=None) == wall:
            return utc  # exists; fold=0 is its first occurrence
        # In a gap: the clocks jump somewhere between reading ``wall`` with the offset
        # after the jump (too early) and with the one before it (too late).
        low = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        low_s, high_s = int(low.timestamp()), int(utc.timestamp())
        while low_s < high_s:  # at most ~17 steps: gaps last at most a day
            middle = (low_s + high_s) // 2
            shown = datetime.fromtimestamp(middle, UTC).astimezone(self.zone)
            if shown.replace(tzinfo=None) >= wall:
                high_s = middle
            else:
                low_s = middle + 1
        return datetime.fromtimestamp(high_s, UTC)


def parse_clock(value: str) -> int:
    """``"HH:MM"`` (``"24:00"`` allowed) as minutes after midnight."""
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{value!r} is not HH:MM")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or total > 24 * 60:
        raise ValueError(f"{value!r} is not a time of day")
    return total


def parse_shift(value: str) -> Shift:
    """``"09:00-17:00"``; an end not after the start means the next day (``"22:00-06:00"``)."""
    start_text, sep, end_text = value.partition("-")
    if not sep:
        raise ValueError(f"{value!r} is not HH:MM-HH:MM")
    start, end = parse_clock(start_text.strip()), parse_clock(end_text.strip())
    if start == 24 * 60:
        raise ValueError(f"{value!r} cannot start at 24:00")
    if end <= start:
        end += 24 * 60
    return Shift(start, end)


def holiday_checker(
    dates: Sequence[date], countries: Sequence[tuple[str, str | None]]
) -> Callable[[date], bool]:
    """A date test for custom dates plus country (and subdivision) public holidays.

    Country holidays come from the ``holidays`` package, which keeps the rules (moving
    feasts, substitute days, subdivisions) of some 200 countries up to date: far more
    than we could maintain by hand.
    """
    import holidays  # imported here: loading all country modules takes a moment

    custom = sorted(set(dates))
    calendars = [holidays.country_holidays(code, subdiv=subdiv) for code, subdiv in countries]

    def is_holiday(day: date) -> bool:
        index = bisect.bisect_left(custom, day)
        if index < len(custom) and custom[index] == day:
            return True
        return any(day in calendar for calendar in calendars)

    return is_holiday
