"""The dispatcher against real databases and real receivers: per-destination limits,
claims handed back when their lease could not cover a send, and batches claimed while
earlier sends are still in flight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalator.notifier import planner
from escalator.notifier.config import WebhookConfig
from escalator.notifier.dispatcher import Attempt, Dispatcher, GroupCommit, Outcome
from escalator.notifier.main import SPEC
from escalator.notifier.models import Delivery
from escalator.notifier.service import Claim, upsert_targets
from escalator.notifier.settings import NotifierSettings
from escalator.shared.db import make_engine, make_sessionmaker
from escalator.shared.events import CloudEvent
from escalator.shared.migrations import upgrade
from tests.notifier.helpers import Receiver, assigned, breached, notifier_settings
from tests.support import Env, wait_until


@asynccontextmanager
async def planned(settings: NotifierSettings, targets: Sequence[WebhookConfig],
                  events: Sequence[CloudEvent[Any]]
                  ) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated database holding the deliveries these events plan to these targets."""
    engine = make_engine(settings)
    try:
        await upgrade(engine, settings, SPEC.migrations)
        sessions = make_sessionmaker(engine)
        async with sessions() as session, session.begin():
            await upsert_targets(session, list(targets))
            for event in events:
                await planner.plan_deliveries(session, [event])
        yield sessions
    finally:
        await engine.dispose()


async def deliveries(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Delivery]:
    async with sessions() as session:
        rows = (await session.scalars(select(Delivery))).all()
    return {row.ticket_id: row for row in rows}


async def test_a_slow_destination_holds_only_its_own_share(env: Env, receiver: Receiver
                                                           ) -> None:
    slow = Receiver(hold=asyncio.Event())
    await slow.start()
    breaches = [breached() for _ in range(3)]
    assignments = [assigned() for _ in range(5)]
    # Two sends in all, one per destination, four claims at a time: if slow's waiting
    # sends took the shared slots, or its backlog the claims, the fast destination would
    # wait behind them.
    settings = notifier_settings(env, delivery_concurrency=2, delivery_per_destination=1,
                                 delivery_batch_size=4, webhook_timeout_seconds=30,
                                 delivery_lease_seconds=60)
    targets = [WebhookConfig(id="slow", url=slow.url(), events=["sla.breached"]),
               WebhookConfig(id="fast", url=receiver.url(), events=["ticket.assigned"])]
    try:
        async with planned(settings, targets, [*breaches, *assignments]) as sessions:
            task = asyncio.create_task(Dispatcher(settings, sessions).run())
            try:
                async def fast_done() -> bool:
                    rows = await deliveries(sessions)
                    return all(rows[e.subject].status == "sent" for e in assignments)

                await wait_until(fast_done, message="the fast destination was held up")
                assert len(slow.requests) == 1  # its one slot, still hanging
                assert slow.hold is not None
                slow.hold.set()

                async def all_done() -> bool:
                    rows = await deliveries(sessions)
                    return all(r.status == "sent" for r in rows.values())

                await wait_until(all_done, message="the slow destination never finished")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        await slow.stop()
    assert sorted(r.ticket_id for r in slow.requests) == sorted(e.subject for e in breaches)
    assert len(receiver.requests) == 5


def released() -> float:
    return REGISTRY.get_sample_value(
        "escalator_deliveries_total", {"channel": "webhook", "outcome": "released"}) or 0.0


async def test_claims_the_lease_cannot_cover_are_handed_back_untried(
    env: Env, receiver: Receiver
) -> None:
    receiver.hold = asyncio.Event()  # nothing is answered: every send times out
    first, second = assigned(), assigned()
    # One send at a time: the second starts only after the first's 2 s timeout, when
    # less than 2 s of its 2.5 s lease is left.
    settings = notifier_settings(env, webhook_url=receiver.url(), delivery_lease_seconds=2.5,
                                 webhook_timeout_seconds=2.0, smtp_timeout_seconds=1.0,
                                 delivery_per_destination=1, delivery_max_attempts=10)
    target = WebhookConfig(id="default", url=receiver.url(), events=["ticket.assigned"])
    before = released()
    async with planned(settings, [target], [first, second]) as sessions:
        task = asyncio.create_task(Dispatcher(settings, sessions).run())
        try:
            await wait_until(lambda: released() > before, message="nothing handed back")
            await wait_until(lambda: receiver.about(second.subject),
                             message="the handed-back delivery was not sent again")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    assert receiver.requests[0].ticket_id == first.subject
    # Its first POST is its first counted attempt: the hand-back did not spend one.
    assert receiver.about(second.subject)[0].headers["x-escalator-delivery-attempt"] == "1"


async def test_a_stop_mid_write_keeps_the_outcomes_unwritten() -> None:
    """What the dispatcher stores on its way out: the write cut short and what queued
    behind it."""
    started, never = asyncio.Event(), asyncio.Event()
    written: list[list[Outcome]] = []

    async def write(batch: list[Outcome]) -> None:
        written.append(batch)
        started.set()
        await never.wait()

    claims = [Claim(str(i), "t", "e", "ticket.assigned", None, "webhook", "http://x/", "{}", 1)
              for i in range(3)]
    first, second, third = (Outcome(c, "sent", Attempt(True)) for c in claims)
    recorder = GroupCommit(write)
    task = asyncio.create_task(recorder.run())
    recorder.add(first)
    await started.wait()
    recorder.add(second, third)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert written == [[first]]
    assert recorder.unwritten() == [first, second, third]
