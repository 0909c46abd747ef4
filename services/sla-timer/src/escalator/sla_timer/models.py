"""SLA policies and clocks.

A clock copies what it needs from its policy when it starts (target, warning time),
so editing a policy never moves the deadline of a clock already running.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from escalator.shared.db import NAMING_CONVENTION, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ClockStatus(StrEnum):
    running = "running"
    met = "met"
    breached = "breached"
    stopped = "stopped"


class Timer(StrEnum):
    """What a running clock fires next."""

    warning = "warning"
    breach = "breach"


FIRST_RESPONSE = "first_response"
NEXT_UPDATE = "next_update"
RESOLUTION = "resolution"
ACKNOWLEDGEMENT = "acknowledgement"


class LevelChange(StrEnum):
    """What an escalation to another level does to the running clocks."""

    keep = "keep"
    reset = "reset"  # the new level gets the full target from the escalation
    extend = "extend"  # the due time moves on by the remaining target's worth


class SlaCalendar(Base):
    __tablename__ = "sla_calendars"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: The validated ``CalendarSpec`` as JSON: zone, weekly hours, holidays.
    spec: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class SlaPolicy(Base):
    __tablename__ = "sla_policies"
    __table_args__ = (Index("ix_sla_policies_position", "position"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: Policies are tried in this order; the first whose match fits the ticket wins.
    position: Mapped[int] = mapped_column(Integer)
    match_severity: Mapped[str | None] = mapped_column(String(10))
    match_category: Mapped[str | None] = mapped_column(String(100))
    match_channel: Mapped[str | None] = mapped_column(String(20))
    match_tier: Mapped[str | None] = mapped_column(String(50))
    first_response_seconds: Mapped[float] = mapped_column(Float)
    #: Fraction of the target after which a warning fires; None for no warning.
    warning_at: Mapped[float | None] = mapped_column(Float)
    #: Or a warning this many business seconds before each target.
    warning_before_seconds: Mapped[float | None] = mapped_column(Float)
    next_update_seconds: Mapped[float | None] = mapped_column(Float)
    resolution_seconds: Mapped[float | None] = mapped_column(Float)
    calendar_id: Mapped[str | None] = mapped_column(String(100))
    on_level_change: Mapped[str] = mapped_column(String(10), default=LevelChange.keep)
    updated_at: Mapped[datetime]


class Clock(Base):
    __tablename__ = "clocks"
    __table_args__ = (
        UniqueConstraint("ticket_id", "name", "cycle"),
        # The timer loop's only scan: the earliest fire times of running clocks.
        Index(
            "ix_clocks_fire_at_running",
            "fire_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(40))
    #: 0 for the first clock of its name; a reopen or the next customer update starts
    #: a new row with the next cycle, so the history stays.
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    calendar_id: Mapped[str | None] = mapped_column(String(100))
    level: Mapped[int | None] = mapped_column(Integer)
    #: Business seconds counted before ``resumed_at`` (earlier running stretches).
    elapsed_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    #: Start of the current running stretch; None while paused.
    resumed_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    #: Business seconds into the target at which the warning fires.
    warn_after_seconds: Mapped[float | None] = mapped_column(Float)
    policy_id: Mapped[str] = mapped_column(String(100))
    target_seconds: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime]
    warn_at: Mapped[datetime | None]
    due_at: Mapped[datetime]
    #: When the timer loop should act next and what it fires then; both None once the
    #: clock has nothing left to fire.
    fire_at: Mapped[datetime | None]
    next_timer: Mapped[str | None] = mapped_column(String(20))
    warned_at: Mapped[datetime | None]
    met_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    met_after_breach: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Bumped by every write (optimistic lock): an UPDATE from a stale read of the row
    #: matches nothing and fails instead of overwriting, so a stale timer is dropped.
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]

    __mapper_args__ = {"version_id_col": version}
