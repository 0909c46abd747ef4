"""SLA policies: the YAML section, its upsert at start-up, and choosing one for a ticket.

The ``sla`` section of the config file is versioned in git; its entries are upserted by
id on every start, in file order, so the file decides what it names and the REST API
edits the same rows. Policies absent from the file are left alone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.config import unique_ids
from escalator.shared.db import conflict_insert, per_transaction
from escalator.shared.events import Severity, TicketSnapshot, utcnow
from escalator.sla_timer.calendars import CalendarSpec, save_calendar
from escalator.sla_timer.models import LevelChange, SlaCalendar, SlaPolicy

PolicyId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


class PolicyMatch(BaseModel):
    """Ticket fields a policy applies to; an absent field matches anything."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity | None = None
    category: str | None = Field(default=None, max_length=100)
    channel: str | None = Field(default=None, max_length=20)
    tier: str | None = Field(default=None, max_length=50)


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: PolicyId
    match: PolicyMatch = PolicyMatch()
    first_response: timedelta = Field(description="ISO-8601 duration, e.g. PT15M")
    next_update: timedelta | None = Field(
        default=None, description="The customer hears from us at least this often")
    resolution: timedelta | None = None
    warning_at: float | None = Field(default=None, gt=0, lt=1,
                                     description="Fraction of the target that warns")
    warning_before: timedelta | None = Field(
        default=None, description="Or warn this long (business time) before each target")
    calendar: str | None = Field(default=None, description="Business calendar; none = 24x7")
    on_level_change: LevelChange = LevelChange.keep

    @field_validator("first_response", "next_update", "resolution", "warning_before")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    def row(self) -> dict[str, Any]:
        """The policy's columns (all but ``position``)."""
        def seconds(value: timedelta | None) -> float | None:
            return value.total_seconds() if value is not None else None

        return {
            "id": self.id,
            "match_severity": self.match.severity.value if self.match.severity else None,
            "match_category": self.match.category,
            "match_channel": self.match.channel,
            "match_tier": self.match.tier,
            "first_response_seconds": self.first_response.total_seconds(),
            "next_update_seconds": seconds(self.next_update),
            "resolution_seconds": seconds(self.resolution),
            "warning_at": self.warning_at,
            "warning_before_seconds": seconds(self.warning_before),
            "calendar_id": self.calendar,
            "on_level_change": self.on_level_change.value,
            "updated_at": utcnow(),
        }


class SlaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calendars: list[CalendarSpec] = []
    policies: list[PolicySpec] = []

    @field_validator("calendars")
    @classmethod
    def _unique_calendars(cls, value: list[CalendarSpec]) -> list[CalendarSpec]:
        return unique_ids(value, "calendar")

    @field_validator("policies")
    @classmethod
    def _unique_ids(cls, value: list[PolicySpec]) -> list[PolicySpec]:
        return unique_ids(value, "policy")


async def upsert_policies(session: AsyncSession, config: SlaConfig) -> None:
    """Write the file's calendars and policies; an upsert so replicas starting together
    do not collide. A policy naming a calendar that exists nowhere stops the start."""
    for calendar in config.calendars:
        await save_calendar(session, calendar)
    if not config.policies:
        return
    known = {c.id for c in config.calendars} | set(
        (await session.scalars(select(SlaCalendar.id))).all())
    for spec in config.policies:
        if spec.calendar is not None and spec.calendar not in known:
            raise ValueError(f"sla.policies.{spec.id}.calendar: unknown calendar "
                             f"{spec.calendar!r}")
    rows = [{**spec.row(), "position": position}
            for position, spec in enumerate(config.policies)]
    statement = conflict_insert(session.get_bind().dialect.name)(SlaPolicy).values(rows)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[SlaPolicy.id],
            set_={name: statement.excluded[name] for name in rows[0] if name != "id"},
        )
    )


async def list_policies(session: AsyncSession) -> list[SlaPolicy]:
    return list((await session.scalars(
        select(SlaPolicy).order_by(SlaPolicy.position, SlaPolicy.id)
    )).all())


def matches(policy: SlaPolicy, ticket: TicketSnapshot) -> bool:
    wanted = (
        (policy.match_severity, ticket.severity.value),
        (policy.match_category, ticket.category),
        (policy.match_channel, ticket.channel),
        (policy.match_tier, ticket.customer.tier),
    )
    return all(want is None or want == have for want, have in wanted)


_READ = "escalator.sla_timer.policies"


async def policies_of(session: AsyncSession) -> dict[str, SlaPolicy]:
    """Every policy by id, in order, read once per transaction (``per_transaction``)."""

    async def load() -> dict[str, SlaPolicy]:
        return {policy.id: policy for policy in await list_policies(session)}

    return await per_transaction(session, _READ, load)


async def policy_for(session: AsyncSession, ticket: TicketSnapshot) -> SlaPolicy | None:
    """The first policy, in order, that applies to ``ticket``; None when none does."""
    return next((p for p in (await policies_of(session)).values() if matches(p, ticket)), None)
