"""Throttling per recipient and ticket, with digests.

A rule with ``throttle_minutes`` lets a person hear of one ticket at most once per
window: the first event goes out as usual; later ones inside the window fold into one
digest message, due when the window ends. A digest still waiting (never claimed) takes
further lines; one already claimed is left alone and the next event starts another.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.notifier.models import Delivery, DeliveryStatus
from escalator.shared.events import utcnow

DIGEST_PREFIX = "digest:"


async def fold(session: AsyncSession, *, channel: str, target_id: str, ticket_id: str,
               window: timedelta, line: str, subject: str, payload: dict[str, object],
               about_event_id: str, about_event_type: str) -> bool | Delivery:
    """False when nothing was sent to this person about this ticket within the window
    (send normally); True when the line joined a waiting digest; else a new digest row."""
    now = utcnow()
    recent = (await session.scalars(
        select(Delivery).where(Delivery.channel == channel, Delivery.ticket_id == ticket_id,
                               Delivery.target_id.in_([target_id, DIGEST_PREFIX + target_id]),
                               Delivery.created_at > now - window)
        .order_by(Delivery.created_at))).all()
    if not recent:
        return False
    for waiting in (d for d in recent if d.target_id.startswith(DIGEST_PREFIX)
                    and d.status == DeliveryStatus.pending and d.attempts == 0):
        body = json.loads(waiting.payload)
        body["lines"].append(line)
        body["body"] = _body(body["lines"])
        body["subject"] = f"{len(body['lines'])} updates on {ticket_id}"
        # attempts == 0 in the WHERE: a dispatcher that claimed it meanwhile wins.
        result = await session.execute(
            update(Delivery).where(Delivery.id == waiting.id, Delivery.attempts == 0)
            .values(payload=json.dumps(body, ensure_ascii=False))
            .execution_options(synchronize_session=False))
        if getattr(result, "rowcount", 0) == 1:
            return True
    lines = [line]
    digest = {**payload, "subject": f"1 update on {ticket_id}", "lines": lines,
              "body": _body(lines), "digest": True, "first_subject": subject}
    return Delivery(
        id=str(uuid.uuid4()), ticket_id=ticket_id, about_event_id=about_event_id,
        about_event_type=about_event_type, channel=channel,
        target_id=DIGEST_PREFIX + target_id, recipient=str(payload["to"]),
        payload=json.dumps(digest, ensure_ascii=False), status=DeliveryStatus.pending.value,
        attempts=0, next_attempt_at=recent[0].created_at + window, created_at=now)


def _body(lines: list[str]) -> str:
    return "Since the last message about this ticket:\n\n" + "\n".join(
        f"- {line}" for line in lines) + "\n"
