"""Notifier operations on its own tables. They never commit: the caller owns the
transaction, so a delivery's state change and the event reporting it commit together.

Delivery lifecycle: pending -> sent | failed | cancelled. A claim pushes ``next_attempt_at`` forward
by a lease and counts the attempt; the outcome is recorded only if the row is still the
one that was claimed (same status and attempt count), so a sender whose lease ran out
cannot overwrite the outcome of the replica that took over.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.notifier import metrics
from escalator.notifier.config import WebhookConfig
from escalator.notifier.models import Delivery, DeliveryStatus, RuleRow, TicketRow, WebhookTarget
from escalator.notifier.rules import Rule
from escalator.shared.db import among, conflict_insert, on_commit
from escalator.shared.events import DLQ, NotificationFailed, NotificationSent, utcnow
from escalator.shared.outbox import emit, enqueue
from escalator.shared.pagination import newest_first
from escalator.shared.problems import Problem

SOURCE = "/escalator/notifier"
_SETTLE_CHUNK = 1000

#: Events whose messages are moot once the ticket is resolved or closed after them:
#: nobody has to act on them any more. Not an escalation request (a customer asking for
#: a manager is heard, resolved or not), nor what the customer is told.
MOOT_AFTER_RESOLUTION = frozenset({
    "ticket.created", "ticket.updated", "ticket.acknowledged", "ticket.assigned",
    "ticket.escalated", "ticket.unassignable", "sla.warning", "sla.breached",
    "sla.update_due",
})
_FINISHED = ("resolved", "closed")


async def upsert_targets(session: AsyncSession, targets: list[WebhookConfig]) -> None:
    """Insert or update targets by id; safe when several replicas start at once."""
    insert = conflict_insert(session.get_bind().dialect.name)
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
    insert = conflict_insert(session.get_bind().dialect.name)
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
    about_event_time: datetime | None
    channel: str
    recipient: str
    payload: str
    attempts: int


async def claim_due(
    session: AsyncSession, *, now: datetime, lease: timedelta, limit: int,
    skip_recipients: Collection[str] = (), skip_email: bool = False,
) -> list[Claim]:
    """Reserve up to ``limit`` due deliveries until ``now + lease``, in one statement,
    oldest first, leaving out webhooks to ``skip_recipients`` (and email if asked): the
    sender has enough of those in hand.

    On PostgreSQL, ``SKIP LOCKED`` lets replicas claim disjoint sets without waiting;
    SQLite serialises writers, which gives the same result.
    """
    due = (
        select(Delivery.id)
        .where(Delivery.status == DeliveryStatus.pending, Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.created_at, Delivery.id)
        .limit(limit)
    )
    if skip_recipients:
        due = due.where(or_(Delivery.channel == "email",
                            Delivery.recipient.not_in(list(skip_recipients))))
    if skip_email:
        due = due.where(Delivery.channel != "email")
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    returned = (await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(due))
        .values(attempts=Delivery.attempts + 1, next_attempt_at=now + lease)
        .returning(Delivery.id, Delivery.ticket_id, Delivery.about_event_id,
                   Delivery.about_event_type, Delivery.about_event_time, Delivery.channel,
                   Delivery.recipient, Delivery.payload, Delivery.attempts, Delivery.created_at)
        .execution_options(synchronize_session=False)
    )).all()
    # RETURNING has no order; one ticket's deliveries must go in the order they were made.
    rows = sorted(returned, key=lambda r: (r.created_at, r.id))
    claims = [Claim(r.id, r.ticket_id, r.about_event_id, r.about_event_type,
                    r.about_event_time, r.channel, r.recipient, r.payload, r.attempts)
              for r in rows]
    return await _drop_moot(session, claims)


async def _drop_moot(session: AsyncSession, claims: list[Claim]) -> list[Claim]:
    """Cancel the claims about work on a ticket resolved or closed after it happened;
    return the others. Checked at send time, the one moment that covers every path
    (first tries, retries, resends after a crash)."""
    candidates = {c.ticket_id for c in claims
                  if c.about_event_type in MOOT_AFTER_RESOLUTION and c.about_event_time}
    if not candidates:
        return claims
    finished = {row.ticket_id: (row.status, row.status_at) for row in (await session.execute(
        select(TicketRow.ticket_id, TicketRow.status, TicketRow.status_at)
        .where(among(TicketRow.ticket_id, "tickets", session),
               TicketRow.status.in_(_FINISHED)), {"tickets": sorted(candidates)}
    )).all()}
    moot: dict[str, list[str]] = {}
    kept = []
    for claim in claims:
        status, since = finished.get(claim.ticket_id, (None, None))
        if (status and since and claim.about_event_time and claim.about_event_time < since
                and claim.about_event_type in MOOT_AFTER_RESOLUTION):
            moot.setdefault(status, []).append(claim.id)
        else:
            kept.append(claim)
    for status, ids in moot.items():
        await session.execute(
            update(Delivery).where(among(Delivery.id, "ids", session))
            .values(status=DeliveryStatus.cancelled.value, next_attempt_at=None,
                    attempts=Delivery.attempts - 1,
                    last_error=f"ticket {status} before this was sent")
            .execution_options(synchronize_session=False), {"ids": ids})
    cancelled = Counter(c.channel for c in claims if c not in kept)
    on_commit(session, lambda: _count(cancelled, "cancelled"))
    return kept


def _count(channels: Counter[str], outcome: str) -> None:
    for channel, times in channels.items():
        metrics.DELIVERIES.labels(channel, outcome).inc(times)


async def _settle(session: AsyncSession, claim: Claim, **values: Any) -> bool:
    return bool(await _settle_many(session, [claim], **values))


async def _settle_many(session: AsyncSession, claims: Sequence[Claim], **values: Any
                       ) -> list[Claim]:
    """Apply ``values`` to the deliveries still held by these claims (same status and
    attempt count); returns those claims, in their order."""
    held: list[Claim] = []
    for start in range(0, len(claims), _SETTLE_CHUNK):  # bounds the bind parameters
        chunk = claims[start:start + _SETTLE_CHUNK]
        ids = set(await session.scalars(
            update(Delivery)
            .where(tuple_(Delivery.id, Delivery.attempts).in_([(c.id, c.attempts)
                                                               for c in chunk]),
                   Delivery.status == DeliveryStatus.pending)
            .values(**values)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        ))
        held.extend(c for c in chunk if c.id in ids)
    return held


def _outcome(claim: Claim) -> dict[str, Any]:
    return {"ticket_id": claim.ticket_id, "delivery_id": claim.id, "channel": claim.channel,
            "recipient": claim.recipient, "about_event_id": claim.about_event_id,
            "about_event_type": claim.about_event_type, "attempts": claim.attempts}


async def mark_sent(session: AsyncSession, claims: Sequence[Claim]) -> list[Claim]:
    """Record successful sends, each with its ``notification.sent``; returns the claims
    that were still held (a sender whose lease ran out is ignored)."""
    if not claims:
        return []
    now = utcnow()
    held = await _settle_many(session, claims, status=DeliveryStatus.sent.value, sent_at=now,
                              next_attempt_at=None, last_error=None)
    for claim in held:
        emit(session, NotificationSent(**_outcome(claim)), source=SOURCE, time=now)
    return held


async def release(session: AsyncSession, claims: Sequence[Claim]) -> list[Claim]:
    """Hand back claims that were never tried (their lease was too short to start a send):
    due again at once, the attempt not counted."""
    if not claims:
        return []
    return await _settle_many(session, claims, next_attempt_at=utcnow(),
                              attempts=Delivery.attempts - 1)


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
    channel: str | None = None,
    recipient: str | None = None,
) -> tuple[list[Delivery], str | None]:
    query = select(Delivery)
    if ticket_id is not None:
        query = query.where(Delivery.ticket_id == ticket_id)
    if status is not None:
        query = query.where(Delivery.status == status)
    if channel is not None:
        query = query.where(Delivery.channel == channel)
    if recipient is not None:
        # Email addresses are stored as given by the event; people type them in any case.
        query = query.where(func.lower(Delivery.recipient) == recipient.strip().lower())
    return await newest_first(session, query, created=Delivery.created_at, key=Delivery.id,
                              limit=limit, cursor=cursor)
