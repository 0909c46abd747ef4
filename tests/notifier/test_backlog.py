"""After downtime the notifier reads its backlog before it speaks, and tells nobody about
work on a ticket that was resolved meanwhile."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from escalator.notifier.main import SPEC
from escalator.shared.events import CloudEvent, TicketAssigned, TicketResolved
from tests.notifier.helpers import Receiver, assigned, notifier_settings, publish, snapshot
from tests.notifier.test_dispatch import deliveries, settled
from tests.support import Env, running, wait_until


async def test_backlog_is_read_first_and_messages_made_moot_are_cancelled(
    env: Env, receiver: Receiver
) -> None:
    settings = notifier_settings(env, webhook_url=receiver.url(), delivery_read_lag_seconds=1.0)
    probe = assigned()
    async with running(SPEC, settings) as svc:
        await publish(env, probe)
        await settled(svc, probe.subject)  # the consumer serves, and has read everything

    # Down: one ticket is assigned and resolved a minute later, another only assigned.
    resolved_later, still_open = assigned(), assigned()
    moot = resolved_later.data
    await publish(env, resolved_later)
    resolution = snapshot(TicketResolved, moot.ticket_id, status="resolved")
    await publish(env, CloudEvent[TicketResolved](
        **{**resolution.model_dump(), "time": resolved_later.time + timedelta(minutes=1)}))
    await publish(env, still_open)
    await asyncio.sleep(1.5)  # the read horizon is now further behind than the lag allowed

    async with running(SPEC, settings) as svc:
        (sent,) = await settled(svc, still_open.subject)
        assert sent["status"] == "sent"
        (cancelled,) = await wait_until(lambda: _cancelled(svc, moot.ticket_id),
                                        message="the moot message was not cancelled")
        assert cancelled["about_event_type"] == TicketAssigned.event_type
        assert cancelled["last_error"] == "ticket resolved before this was sent"
        assert cancelled["attempts"] == 0
    assert receiver.about(moot.ticket_id) == []
    assert len(receiver.about(still_open.subject)) == 1


async def _cancelled(svc: object, ticket_id: str) -> list[dict[str, object]] | None:
    items = await deliveries(svc, ticket_id)  # type: ignore[arg-type]
    return items if items and all(d["status"] == "cancelled" for d in items) else None
