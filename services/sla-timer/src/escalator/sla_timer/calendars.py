"""Business calendars: their YAML/REST shape, storage, and the ``Calendar`` each becomes.

A policy names a calendar (or none, for 24×7). Clocks keep the calendar's id and look
the calendar up when they compute a deadline; calendars are cached per process and
rebuilt when their row's ``updated_at`` changes, because building one that follows
country holidays loads the ``holidays`` package's rules.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.config import TimeZoneName
from escalator.shared.events import utcnow
from escalator.sla_timer.calendar import (
    AlwaysOpen,
    BusinessHours,
    Calendar,
    holiday_checker,
    parse_shift,
)
from escalator.sla_timer.models import SlaCalendar

CalendarId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS = AlwaysOpen()


class CountryHolidays(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: str = Field(min_length=2, max_length=3, examples=["DE"])
    subdivision: str | None = Field(default=None, max_length=10, examples=["BY"])

    @field_validator("country")
    @classmethod
    def _known(cls, value: str) -> str:
        import holidays

        if value.upper() not in holidays.list_supported_countries():
            raise ValueError(f"{value!r} is not a country the holidays package knows")
        return value.upper()


class Holidays(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dates: list[date] = Field(default=[], max_length=1000)
    countries: list[CountryHolidays] = Field(default=[], max_length=10)


class CalendarSpec(BaseModel):
    """Business hours: ``hours`` maps ``mon``..``sun`` to ``HH:MM-HH:MM`` shifts; a shift
    ending at or before its start runs overnight; no ``hours`` at all means 24×7."""

    model_config = ConfigDict(extra="forbid")

    id: CalendarId
    timezone: TimeZoneName = Field(default="UTC", examples=["Europe/Berlin"])
    hours: dict[str, list[str]] | None = Field(
        default=None, examples=[{"mon": ["09:00-12:00", "13:00-17:00"], "sat": ["22:00-06:00"]}]
    )
    holidays: Holidays = Holidays()


    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if value is None:
            return value
        unknown = sorted(set(value) - set(DAYS))
        if unknown:
            raise ValueError(f"unknown days {', '.join(unknown)} (use {', '.join(DAYS)})")
        for day, shifts in value.items():
            for shift in shifts:
                try:
                    parse_shift(shift)
                except ValueError as exc:
                    raise ValueError(f"{day}: {exc}") from exc
        if not any(value.values()):
            raise ValueError("needs at least one opening interval (omit hours for 24x7)")
        return value


def build(spec: CalendarSpec) -> Calendar:
    if spec.hours is None:
        return ALWAYS
    week = {DAYS.index(day): [parse_shift(s) for s in shifts]
            for day, shifts in spec.hours.items()}
    checker = holiday_checker(spec.holidays.dates,
                              [(c.country, c.subdivision) for c in spec.holidays.countries])
    try:
        zone = ZoneInfo(spec.timezone)
    except ZoneInfoNotFoundError as exc:  # validated already; a zone removed since
        raise ValueError(f"unknown time zone {spec.timezone}") from exc
    return BusinessHours(zone, week, is_holiday=checker)


_cache: dict[str, tuple[Any, Calendar]] = {}


_HELD = "escalator.sla_timer.calendars"


async def calendar_of(session: AsyncSession, calendar_id: str | None) -> Calendar:
    """The calendar named ``calendar_id``; 24×7 for None or one deleted since."""
    if calendar_id is None:
        return ALWAYS
    row = await session.get(SlaCalendar, calendar_id)
    if row is None:
        return ALWAYS
    # Held for the session's life: its identity map keeps only rows referenced elsewhere,
    # and a lookup that misses it flushes the session's changes before its query.
    session.info.setdefault(_HELD, {})[calendar_id] = row
    cached = _cache.get(calendar_id)
    if cached is not None and cached[0] == row.updated_at:
        return cached[1]
    calendar = build(CalendarSpec.model_validate(row.spec))
    _cache[calendar_id] = (row.updated_at, calendar)
    return calendar


async def list_calendars(session: AsyncSession) -> list[SlaCalendar]:
    return list((await session.scalars(select(SlaCalendar).order_by(SlaCalendar.id))).all())


async def save_calendar(session: AsyncSession, spec: CalendarSpec) -> SlaCalendar:
    """Insert or replace the calendar ``spec.id``."""
    row = await session.get(SlaCalendar, spec.id)
    if row is None:
        row = SlaCalendar(id=spec.id)
        session.add(row)
    row.spec = spec.model_dump(mode="json")
    row.updated_at = utcnow()
    return row
