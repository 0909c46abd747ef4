"""The read horizon: the earliest moment every partition has been read through."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from escalator.shared import progress
from escalator.shared.db import make_engine, make_sessionmaker, progress_metadata
from escalator.shared.events import utcnow
from tests.shared.probe.app import ProbeSettings
from tests.support import Env


async def test_horizon_is_the_slowest_partition_and_never_moves_back(env: Env) -> None:
    settings = env.settings(ProbeSettings)
    engine = make_engine(settings)
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f'CREATE SCHEMA "{settings.db_schema}"'))
        await conn.run_sync(progress_metadata.create_all)
    sessionmaker = make_sessionmaker(engine)
    now = utcnow()
    earlier, later = now - timedelta(seconds=30), now - timedelta(seconds=5)

    async def horizon(topics: list[str]) -> object:
        async with sessionmaker() as session:
            return await progress.horizon(session, topics)

    async def record(read: dict[progress.Partition, object]) -> None:
        async with sessionmaker() as session, session.begin():
            await progress.record(session, read)  # type: ignore[arg-type]

    try:
        assert await horizon(["t"]) is None  # nothing consumed: nothing to wait for
        await record({("t", 0): None, ("t", 1): later})
        assert await horizon(["t"]) == progress.NOT_READ  # partition 0 not read yet
        await record({("t", 0): earlier})
        assert await horizon(["t"]) == earlier
        await record({("t", 0): now - timedelta(minutes=5), ("t", 1): None})
        assert await horizon(["t"]) == earlier  # neither older stamps nor None go back
        await record({("t", 0): now, ("u", 0): earlier})
        assert await horizon(["t"]) == later
        assert await horizon(["t", "u"]) == earlier
        assert await horizon(["other"]) is None
    finally:
        await engine.dispose()
