"""Claim and lease rules of the delivery table, against the real databases."""

from __future__ import annotations

from datetime import timedelta

from escalator.notifier import planner, service
from escalator.notifier.config import WebhookConfig
from escalator.notifier.main import SPEC
from escalator.notifier.models import Delivery
from escalator.shared.db import make_engine, make_sessionmaker
from escalator.shared.events import utcnow
from escalator.shared.migrations import upgrade
from tests.notifier.helpers import assigned, notifier_settings
from tests.support import Env


async def test_expired_lease_hands_the_delivery_to_the_next_sender(env: Env) -> None:
    settings = notifier_settings(env)
    engine = make_engine(settings)
    try:
        await upgrade(engine, settings, SPEC.migrations)
        sessions = make_sessionmaker(engine)
        event = assigned()
        async with sessions() as session, session.begin():
            await service.upsert_targets(session, [WebhookConfig(
                id="default", url="http://127.0.0.1:9/hook", events=["ticket.assigned"])])
            assert len(await planner.plan_deliveries(session, [event])) == 1
            assert await planner.plan_deliveries(session, [event]) == []  # one per recipient

        lease = timedelta(seconds=30)
        async with sessions() as session, session.begin():
            [crashed] = await service.claim_due(session, now=utcnow(), lease=lease, limit=10)
        async with sessions() as session, session.begin():
            # Leased: nobody else may send it now...
            assert await service.claim_due(session, now=utcnow(), lease=lease, limit=10) == []
        async with sessions() as session, session.begin():
            # ...but once the lease has run out (the sender died), the next one takes it.
            later = utcnow() + lease + timedelta(seconds=1)
            [retaken] = await service.claim_due(session, now=later, lease=lease, limit=10)
        assert retaken.id == crashed.id and retaken.attempts == crashed.attempts + 1

        async with sessions() as session, session.begin():
            assert await service.mark_sent(session, [crashed]) == []  # stale sender: ignored
            assert await service.mark_sent(session, [retaken]) == [retaken]
        async with sessions() as session:
            delivery = await session.get(Delivery, retaken.id)
            assert delivery is not None
            assert delivery.status == "sent" and delivery.attempts == 2
    finally:
        await engine.dispose()


async def test_claims_come_oldest_first_and_replicas_claim_disjoint_batches(pg_env: Env
                                                                            ) -> None:
    settings = notifier_settings(pg_env)
    engine = make_engine(settings)
    try:
        await upgrade(engine, settings, SPEC.migrations)
        sessions = make_sessionmaker(engine)
        events = [assigned() for _ in range(5)]
        async with sessions() as session, session.begin():
            await service.upsert_targets(session, [WebhookConfig(
                id="default", url="http://127.0.0.1:9/hook", events=["ticket.assigned"])])
            for event in events:
                await planner.plan_deliveries(session, [event])

        lease, now = timedelta(seconds=30), utcnow()
        async with sessions() as first, first.begin():
            mine = await service.claim_due(first, now=now, lease=lease, limit=3)
            # While the first sender's claim is uncommitted, a second skips its rows.
            async with sessions() as second, second.begin():
                theirs = await service.claim_due(second, now=now, lease=lease, limit=10)
        assert [c.ticket_id for c in mine + theirs] == [e.subject for e in events]
        assert all(c.attempts == 1 for c in mine + theirs)

        async with sessions() as session, session.begin():
            # Handed back untried: due again, the attempt not counted.
            assert await service.release(session, mine) == mine
            again = await service.claim_due(session, now=utcnow(), lease=lease, limit=10)
        assert [c.id for c in again] == [c.id for c in mine] and again[0].attempts == 1
    finally:
        await engine.dispose()
