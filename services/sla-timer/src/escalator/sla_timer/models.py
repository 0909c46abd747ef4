"""SLA policies and clocks.

A clock copies what it needs from its policy when it starts (target, warning time),
so editing a policy never moves the deadline of a clock already running.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, Index, Integer, MetaData, String, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from escalator.shared.db import NAMING_CONVENTION, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}


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
    updated_at: Mapped[datetime]


class Clock(Base):
    __tablename__ = "clocks"
    __table_args__ = (
        UniqueConstraint("ticket_id", "name"),
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
