"""Response bodies of the sla-timer API (request bodies are the YAML specs themselves:
``PolicySpec`` and ``CalendarSpec``, so the file and the API cannot drift apart)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from escalator.shared.events import Severity
from escalator.sla_timer.calendar import Calendar
from escalator.sla_timer.models import Clock, ClockStatus, SlaCalendar, SlaPolicy
from escalator.sla_timer.service import elapsed


class ClockOut(BaseModel):
    name: str = Field(examples=["first_response"])
    cycle: int = Field(description="0, then 1, 2... for each reopen or next update")
    policy: str
    calendar: str | None = Field(description="Business calendar; None for 24x7")
    severity: Severity
    level: int | None
    status: ClockStatus
    state: Literal["running", "paused", "met", "breached", "stopped"]
    target_seconds: float
    started_at: datetime
    warn_at: datetime | None
    due_at: datetime | None = Field(description="None while paused (the deadline moves)")
    elapsed_seconds: float = Field(
        description="Business time counted, until met, stopped or now (pauses excluded)."
    )
    remaining_seconds: float = Field(
        description="Target minus business time elapsed; negative once overdue."
    )
    paused_at: datetime | None
    warned_at: datetime | None
    met_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None
    met_after_breach: bool

    @classmethod
    def of(cls, clock: Clock, calendar: Calendar, now: datetime) -> ClockOut:
        counted = elapsed(clock, calendar, now)
        paused = clock.status == ClockStatus.running and clock.resumed_at is None
        return cls(
            name=clock.name, cycle=clock.cycle, policy=clock.policy_id,
            calendar=clock.calendar_id, severity=Severity(clock.severity), level=clock.level,
            status=ClockStatus(clock.status),
            state="paused" if paused else clock.status,  # type: ignore[arg-type]
            target_seconds=clock.target_seconds, started_at=clock.started_at,
            warn_at=clock.warn_at, due_at=None if paused else clock.due_at,
            elapsed_seconds=counted, remaining_seconds=clock.target_seconds - counted,
            paused_at=clock.paused_at, warned_at=clock.warned_at, met_at=clock.met_at,
            breached_at=clock.breached_at, stopped_at=clock.stopped_at,
            met_after_breach=clock.met_after_breach,
        )


class TicketClocks(BaseModel):
    ticket_id: str
    clocks: list[ClockOut]


class PolicyMatchOut(BaseModel):
    severity: Severity | None
    category: str | None
    channel: str | None
    tier: str | None


class PolicyOut(BaseModel):
    id: str
    position: int = Field(description="Policies are tried in this order; first match wins.")
    match: PolicyMatchOut
    calendar: str | None
    first_response_seconds: float
    next_update_seconds: float | None
    resolution_seconds: float | None
    warning_at: float | None
    warning_before_seconds: float | None
    on_level_change: str

    @classmethod
    def of(cls, policy: SlaPolicy) -> PolicyOut:
        return cls(
            id=policy.id,
            position=policy.position,
            match=PolicyMatchOut(
                severity=Severity(policy.match_severity) if policy.match_severity else None,
                category=policy.match_category,
                channel=policy.match_channel,
                tier=policy.match_tier,
            ),
            calendar=policy.calendar_id,
            first_response_seconds=policy.first_response_seconds,
            next_update_seconds=policy.next_update_seconds,
            resolution_seconds=policy.resolution_seconds,
            warning_at=policy.warning_at,
            warning_before_seconds=policy.warning_before_seconds,
            on_level_change=policy.on_level_change,
        )


class PolicyList(BaseModel):
    items: list[PolicyOut]


class CalendarOut(BaseModel):
    id: str
    spec: dict[str, Any] = Field(description="As given: timezone, hours, holidays")
    updated_at: datetime

    @classmethod
    def of(cls, row: SlaCalendar) -> CalendarOut:
        return cls(id=row.id, spec=row.spec, updated_at=row.updated_at)


class CalendarList(BaseModel):
    items: list[CalendarOut]
