"""Response bodies of the sla-timer API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from escalator.shared.events import Severity
from escalator.sla_timer.models import Clock, ClockStatus, SlaPolicy


class ClockOut(BaseModel):
    name: str = Field(examples=["first_response"])
    policy: str
    severity: Severity
    status: ClockStatus
    target_seconds: float
    started_at: datetime
    warn_at: datetime | None
    due_at: datetime
    elapsed_seconds: float = Field(
        description="From start until met, stopped or breached-and-unanswered now."
    )
    remaining_seconds: float = Field(
        description="Due time minus the same end point; negative once overdue."
    )
    warned_at: datetime | None
    met_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None
    met_after_breach: bool

    @classmethod
    def of(cls, clock: Clock, now: datetime) -> ClockOut:
        end = min(t for t in (clock.met_at, clock.stopped_at, now) if t is not None)
        return cls(
            name=clock.name,
            policy=clock.policy_id,
            severity=Severity(clock.severity),
            status=ClockStatus(clock.status),
            target_seconds=clock.target_seconds,
            started_at=clock.started_at,
            warn_at=clock.warn_at,
            due_at=clock.due_at,
            elapsed_seconds=(end - clock.started_at).total_seconds(),
            remaining_seconds=(clock.due_at - end).total_seconds(),
            warned_at=clock.warned_at,
            met_at=clock.met_at,
            breached_at=clock.breached_at,
            stopped_at=clock.stopped_at,
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
    first_response_seconds: float
    warning_at: float | None

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
            first_response_seconds=policy.first_response_seconds,
            warning_at=policy.warning_at,
        )


class PolicyList(BaseModel):
    items: list[PolicyOut]
