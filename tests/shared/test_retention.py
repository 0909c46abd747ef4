"""Pruning removes only what has expired: sent outbox rows and old inbox ids."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select

from escalator.shared.db import inbox, make_engine, make_sessionmaker, outbox
from escalator.shared.events import utcnow
from escalator.shared.migrations import upgrade
from escalator.shared.retention import prune_once
from tests.shared.probe.app import SPEC, ProbeSettings
from tests.support import Env


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
