"""SLA policies: the YAML section, its upsert at start-up, and choosing one for a ticket.

The ``sla`` section of the config file is versioned in git; its entries are upserted by
id on every start, in file order, so the file decides what it names and the REST API
(later) edits the same rows. Policies absent from the file are left alone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.events import Severity, TicketSnapshot, utcnow
from escalator.sla_timer.models import SlaPolicy

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
    warning_at: float | None = Field(default=None, gt=0, lt=1,
                                     description="Fraction of the target that warns")

    @field_validator("first_response")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value


class SlaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policies: list[PolicySpec] = []

    @field_validator("policies")
    @classmethod
    def _unique_ids(cls, value: list[PolicySpec]) -> list[PolicySpec]:
        ids = [p.id for p in value]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate policy ids: {', '.join(duplicates)}")
        return value


async def upsert_policies(session: AsyncSession, config: SlaConfig) -> None:
    """Write the file's policies; an upsert so replicas starting together do not collide."""
    if not config.policies:
        return
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "id": spec.id,
            "position": position,
            "match_severity": spec.match.severity.value if spec.match.severity else None,
            "match_category": spec.match.category,
            "match_channel": spec.match.channel,
            "match_tier": spec.match.tier,
            "first_response_seconds": spec.first_response.total_seconds(),
            "warning_at": spec.warning_at,
            "updated_at": now,
        }
        for position, spec in enumerate(config.policies)
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(SlaPolicy).values(rows)
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


async def policy_for(session: AsyncSession, ticket: TicketSnapshot) -> SlaPolicy | None:
    """The first policy, in order, that applies to ``ticket``; None when none does."""
    return next((p for p in await list_policies(session) if matches(p, ticket)), None)
