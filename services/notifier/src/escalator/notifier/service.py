"""Notifier operations on its own tables. They never commit: the caller owns the
transaction, so a delivery's state change and the event reporting it commit together.

Delivery lifecycle: pending -> sent | failed. A claim pushes ``next_attempt_at`` forward
by a lease and counts the attempt; the outcome is recorded only if the row is still the
one that was claimed (same status and attempt count), so a sender whose lease ran out
cannot overwrite the outcome of the replica that took over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.notifier.config import WebhookConfig
from escalator.notifier.models import Delivery, DeliveryStatus, RuleRow, WebhookTarget
from escalator.notifier.rules import Rule
from escalator.shared.events import DLQ, NotificationFailed, NotificationSent, utcnow
from escalator.shared.outbox import emit, enqueue
from escalator.shared.pagination import newest_first
from escalator.shared.problems import Problem

SOURCE = "/escalator/notifier"


async def upsert_targets(session: AsyncSession, targets: list[WebhookConfig]) -> None:
    """Insert or update targets by id; safe when several replicas start at once."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    for target in targets:
        values = {"url": target.url, "events": list(target.events), "enabled": target.enabled,
                  "format": target.format, "updated_at": now}
        await session.execute(
            insert(WebhookTarget)
            .values(id=target.id, created_at=now, **values)
            .on_conflict_do_update(index_elements=[WebhookTarget.id], set_=values)
        )


async def upsert_rules(session: AsyncSession, rules: list[Rule]) -> None:
    """Insert or replace rules by id (YAML at start-up, PUT over REST)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    for rule in rules:
        values = {"definition": rule.model_dump(mode="json"), "updated_at": now}
        await session.execute(
            insert(RuleRow).values(id=rule.id, created_at=now, **values)
            .on_conflict_do_update(index_elements=[RuleRow.id], set_=values)
        )


async def disable_target(session: AsyncSession, target_id: str) -> None:
    await session.execute(
        update(WebhookTarget).where(WebhookTarget.id == target_id, WebhookTarget.enabled)
        .values(enabled=False, updated_at=utcnow())
    )


async def list_targets(session: AsyncSession) -> list[WebhookTarget]:
    return list((await session.scalars(select(WebhookTarget).order_by(WebhookTarget.id))).all())


@dataclass(frozen=True)
class Claim:
    """A delivery reserved for one send; ``attempts`` already counts this one."""

    id: str
    ticket_id: str
    about_event_id: str
    about_event_type: str
    channel: str
    recipient: str
    payload: str
    attempts: int


async def claim_due(
    session: AsyncSession, *, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    """Reserve up to ``limit`` due deliveries until ``now + lease``.

    On PostgreSQL, ``SKIP LOCKED`` lets replicas claim disjoint sets without waiting;
    SQLite serialises writers, which gives the same result.
    """
    query = (
        select(Delivery)
        .where(Delivery.status == DeliveryStatus.pending, Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.created_at, Delivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claims = []
    for row in (await session.scalars(query)).all():
        row.attempts += 1
        row.next_attempt_at = now + lease
        claims.append(Claim(row.id, row.ticket_id, row.about_event_id, row.about_event_type,
                            row.channel, row.recipient, row.payload, row.attempts))
    return claims


async def _settle(session: AsyncSession, claim: Claim, **values: Any) -> bool:
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id == claim.id, Delivery.status == DeliveryStatus.pending,
               Delivery.attempts == claim.attempts)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def _outcome(claim: Claim) -> dict[str, Any]:
    return {"ticket_id": claim.ticket_id, "delivery_id": claim.id, "channel": claim.channel,
            "recipient": claim.recipient, "about_event_id": claim.about_event_id,
            "about_event_type": claim.about_event_type, "attempts": claim.attempts}


async def mark_sent(session: AsyncSession, claim: Claim) -> bool:
    now = utcnow()
    if not await _settle(session, claim, status=DeliveryStatus.sent.value, sent_at=now,
                         next_attempt_at=None, last_error=None):
        return False
    emit(session, NotificationSent(**_outcome(claim)), source=SOURCE, time=now)
    return True


async def mark_retry(session: AsyncSession, claim: Claim, *, error: str, at: datetime) -> bool:
    return await _settle(session, claim, next_attempt_at=at, last_error=error)


async def mark_failed(session: AsyncSession, claim: Claim, *, error: str) -> bool:
    if not await _settle(session, claim, status=DeliveryStatus.failed.value,
                         next_attempt_at=None, last_error=error):
        return False
    emit(session, NotificationFailed(**_outcome(claim), error=error), source=SOURCE)
    # The dead-letter topic is where operators look for everything that was given up on.
    letter = {"reason": "delivery_failed", "error": error[:4000], "service": "notifier",
              "delivery": _outcome(claim), "dead_lettered_at": utcnow().isoformat()}
    enqueue(session, topic=DLQ, key=claim.ticket_id, event_id=f"delivery-failed:{claim.id}",
            event_type="notification.failed", payload=json.dumps(letter))
    return True


async def mark_paused(session: AsyncSession, claim: Claim, *, error: str, at: datetime
                      ) -> bool:
    """Put the delivery back until ``at`` without spending an attempt: its destination is
    paused by the circuit breaker, so this round was not a try."""
    return await _settle(session, claim, next_attempt_at=at, last_error=error,
                         attempts=claim.attempts - 1)


async def pending_stats(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many deliveries wait, and when the earliest of them is due."""
    row = (await session.execute(
        select(func.count(), func.min(Delivery.next_attempt_at))
        .where(Delivery.status == DeliveryStatus.pending)
    )).one()
    return int(row[0]), row[1]


async def get_delivery(session: AsyncSession, delivery_id: str) -> Delivery:
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None:
        raise Problem(404, "Not Found", f"no delivery {delivery_id}")
    return delivery


async def list_deliveries(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    ticket_id: str | None,
    status: DeliveryStatus | None,
) -> tuple[list[Delivery], str | None]:
    query = select(Delivery)
    if ticket_id is not None:
        query = query.where(Delivery.ticket_id == ticket_id)
    if status is not None:
        query = query.where(Delivery.status == status)
    return await newest_first(session, query, created=Delivery.created_at, key=Delivery.id,
                              limit=limit, cursor=cursor)
