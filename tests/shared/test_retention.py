"""Pruning removes only what has expired: sent outbox rows and old inbox ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, text

from escalator.shared import retention
from escalator.shared.db import inbox, make_engine, make_sessionmaker, outbox
from escalator.shared.events import utcnow
from escalator.shared.migrations import upgrade
from escalator.shared.retention import prune_once
from tests.shared.probe.app import SPEC, ProbeSettings
from tests.support import Env, explain


async def test_prune_keeps_unsent_and_recent_rows(env: Env) -> None:
    settings = env.settings(ProbeSettings, outbox_retention_hours=1, inbox_retention_hours=2)
    engine = make_engine(settings)
    await upgrade(engine, settings, SPEC.migrations)
    sessionmaker = make_sessionmaker(engine)
    now = utcnow()
    old, recent = now - timedelta(hours=3), now - timedelta(minutes=10)
    try:
        async with sessionmaker() as session, session.begin():
            for n, (created, sent) in enumerate([(old, old), (old, None), (recent, recent)]):
                await session.execute(insert(outbox).values(
                    event_id=f"e{n}", topic="tickets", key="k", event_type="t", payload="{}",
                    created_at=created, sent_at=sent))
            for n, at in enumerate([old, recent]):
                await session.execute(insert(inbox).values(
                    event_id=f"i{n}", event_type="t", topic="tickets", processed_at=at))

        assert await prune_once(settings, sessionmaker) == {"outbox": 1, "inbox": 1}
        async with sessionmaker() as session:
            left = set((await session.scalars(select(outbox.c.event_id))).all())
            assert left == {"e1", "e2"}  # unsent rows stay however old
            assert await session.scalar(select(func.count()).select_from(inbox)) == 1
    finally:
        await engine.dispose()



async def test_a_large_backlog_is_pruned_batch_by_batch_each_by_its_own_rows(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of expired ids go in several batches and the recent ones stay. On
    PostgreSQL a batch deletes its rows by address (a TID scan); the delete by key was
    planned as a hash join that read the whole table for every batch."""
    monkeypatch.setattr(retention, "BATCH", 1_000)
    settings = env.settings(ProbeSettings, inbox_retention_hours=2)
    engine = make_engine(settings)
    await upgrade(engine, settings, SPEC.migrations)
    sessionmaker = make_sessionmaker(engine)
    now = utcnow()
    try:
        async with sessionmaker() as session, session.begin():
            await session.execute(insert(inbox), [
                {"event_id": f"i{n}", "event_type": "t", "topic": "tickets",
                 "processed_at": now - timedelta(hours=5 if n < 4_500 else 0, seconds=n)}
                for n in range(6_000)])
        if env.backend == "postgresql":
            async with sessionmaker() as session:
                await session.execute(text("ANALYZE inbox"))
                expired = inbox.c.processed_at < func.now() - text("interval '2 hours'")
                plan = await explain(session, retention.batch_delete(inbox, expired,
                                                                     "postgresql"))
                assert "Tid Scan" in plan and "Hash" not in plan, plan
        assert await prune_once(settings, sessionmaker) == {"outbox": 0, "inbox": 4_500}
        async with sessionmaker() as session:
            left = (await session.scalars(select(inbox.c.event_id))).all()
        assert sorted(left, key=lambda e: int(e[1:])) == [f"i{n}" for n in range(4_500, 6_000)]
    finally:
        await engine.dispose()
