"""Business-time arithmetic against a slow, obviously-correct minute-stepping reference.

The reference walks UTC minute by minute and asks, for each, "does the zone's clock
show an open time?". The one subtlety, written out: it uses the latest wall time the
clock has shown so far (so a fall-back fold does not close a shift that already opened,
and a spring-forward gap opens a shift "starting" inside it when the clocks jump),
which is how ``calendar.py`` defines wall times.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalator.sla_timer.calendar import AlwaysOpen, BusinessHours, Shift, parse_shift

ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Pacific/Apia",
         "Asia/Kathmandu", "Pacific/Chatham", "America/Santiago"]
#: DST changes (gaps and folds, of 30 and 60 minutes) and a skipped day, per zone, so
#: hypothesis lands on the edges instead of hoping to.
EDGES = [("America/New_York", date(2026, 3, 8)), ("America/New_York", date(2026, 11, 1)),
         ("Europe/London", date(2026, 3, 29)), ("Europe/London", date(2026, 10, 25)),
         ("Australia/Lord_Howe", date(2026, 4, 5)), ("Australia/Lord_Howe", date(2026, 10, 4)),
         ("Pacific/Apia", date(2011, 12, 30)), ("America/Santiago", date(2026, 4, 5)),
         ("America/Santiago", date(2026, 9, 6)), ("Pacific/Chatham", date(2026, 4, 5)),
         ("Pacific/Chatham", date(2026, 9, 27))]
#: Shift boundaries where the clocks change (00:00-04:00), or anywhere.
BOUNDARY = st.one_of(st.integers(0, 16).map(lambda q: q * 15),
                     st.integers(0, 95).map(lambda q: q * 15))
MINUTE = timedelta(minutes=1)
Week = dict[int, list[tuple[int, int]]]


def reference_minutes(
    zone: ZoneInfo, week: Week, holidays: set[date], start: datetime
) -> Iterator[tuple[datetime, bool]]:
    """Each UTC minute from ``start`` and whether it is business time."""
    moment = start - timedelta(hours=3)
    latest: datetime | None = None
    while True:
        wall = moment.astimezone(zone).replace(tzinfo=None)
        latest = wall if latest is None or wall > latest else latest
        if moment >= start:
            yield moment, _open_at(week, holidays, latest)
        moment += MINUTE


def _open_at(week: Week, holidays: set[date], wall: datetime) -> bool:
    for day in (wall.date(), wall.date() - timedelta(days=1)):
        if day in holidays:
            continue
        midnight = datetime.combine(day, time())
        for begin, end in week.get(day.weekday(), []):
            if midnight + timedelta(minutes=begin) <= wall < midnight + timedelta(minutes=end):
                return True
    return False


def reference_add(zone: ZoneInfo, week: Week, holidays: set[date], start: datetime,
                  minutes: int) -> datetime:
    counted = 0
    for moment, is_open in reference_minutes(zone, week, holidays, start):
        if counted == minutes:
            return moment
        counted += is_open
    raise AssertionError("unreachable")


def reference_between(zone: ZoneInfo, week: Week, holidays: set[date], start: datetime,
                      end: datetime) -> int:
    total = 0
    for moment, is_open in reference_minutes(zone, week, holidays, start):
        if moment >= end:
            return total
        total += is_open
    raise AssertionError("unreachable")


shift = st.tuples(BOUNDARY, st.integers(1, 64).map(lambda q: q * 15))
weeks = st.dictionaries(st.integers(0, 6), st.lists(shift, min_size=1, max_size=3),
                        min_size=3, max_size=7).map(
    lambda raw: {day: [(s, s + length) for s, length in shifts] for day, shifts in raw.items()})


@st.composite
def cases(draw: st.DrawFn) -> tuple[ZoneInfo, Week, set[date], datetime]:
    name, anchor = draw(st.one_of(
        st.sampled_from(EDGES),
        st.tuples(st.sampled_from(ZONES), st.dates(date(2000, 1, 1), date(2035, 1, 1)))))
    zone = ZoneInfo(name)
    base = datetime.combine(anchor, time(), tzinfo=zone).astimezone(UTC)
    start = base + timedelta(minutes=draw(st.integers(-2 * 1440, 1440)))
    holidays = {anchor + timedelta(days=d) for d in draw(st.sets(st.integers(-3, 6), max_size=3))}
    return zone, draw(weeks), holidays, start


def calendar_of(zone: ZoneInfo, week: Week, holidays: set[date]) -> BusinessHours:
    shifts = {day: [Shift(s, e) for s, e in spans] for day, spans in week.items()}
    return BusinessHours(zone, shifts, is_holiday=holidays.__contains__)


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(cases(), st.integers(0, 8 * 60))
def test_add_matches_minute_stepping(case: tuple[ZoneInfo, Week, set[date], datetime],
                                     minutes: int) -> None:
    zone, week, holidays, start = case
    calendar = calendar_of(zone, week, holidays)
    expected = reference_add(zone, week, holidays, start, minutes)
    assert calendar.add(start, minutes * 60) == expected
    assert calendar.between(start, expected) == minutes * 60


@FAST
@given(cases(), st.integers(0, 2 * 1440))
def test_between_matches_minute_stepping(case: tuple[ZoneInfo, Week, set[date], datetime],
                                         span: int) -> None:
    zone, week, holidays, start = case
    end = start + timedelta(minutes=span)
    expected = reference_between(zone, week, holidays, start, end)
    assert calendar_of(zone, week, holidays).between(start, end) == expected * 60


def test_named_edges() -> None:
    """A few cases a reader can check by hand."""
    new_york = ZoneInfo("America/New_York")
    nine_to_five = {day: [parse_shift("09:00-17:00")] for day in range(5)}
    office = BusinessHours(new_york, nine_to_five)
    friday_4pm = datetime(2026, 3, 6, 16, 0, tzinfo=new_york)
    # One hour left on Friday, the second hour on Monday 9-10 (after the DST change).
    assert office.add(friday_4pm, 7200) == datetime(2026, 3, 9, 10, 0, tzinfo=new_york)
    # Night shift across the spring-forward gap: 22:00-06:00 is 7 hours that night.
    nights = BusinessHours(new_york, {5: [parse_shift("22:00-06:00")]})
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=new_york)
    assert nights.between(saturday, saturday + timedelta(days=1)) == 7 * 3600
    # A holiday on the shift's start date cancels it.
    closed = BusinessHours(new_york, nine_to_five, is_holiday=lambda d: d == date(2026, 3, 9))
    assert closed.add(friday_4pm, 7200) == datetime(2026, 3, 10, 10, 0, tzinfo=new_york)
    # Fractions of a second survive.
    assert office.add(friday_4pm, 0.25) == friday_4pm + timedelta(seconds=0.25)
    assert AlwaysOpen().between(friday_4pm, friday_4pm - MINUTE) == 0


def test_round_the_clock_calendar_answers_at_once() -> None:
    always = BusinessHours(ZoneInfo("Europe/Berlin"), {d: [parse_shift("00:00-24:00")]
                                                       for d in range(7)})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert always.add(start, 90 * 86400) == start + timedelta(days=90)


@pytest.mark.parametrize("text", ["9-17", "09:00", "25:00-26:00", "09:60-10:00", "24:00-01:00"])
def test_bad_shifts_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_shift(text)
