"""The benchmarks' stand-in for autovacuum: on a server with autovacuum off it analyses
the tables that changed enough and vacuums those with enough dead rows, by autovacuum's
rules; on one with it on it does nothing. Without it, a benchmark on such a server
measures plans made for empty tables and scans stepping over every dead row."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import autovacuum_stand_in
from tests.support import PG_URL, new_prefix


async def test_stand_in_analyses_what_autovacuum_would(postgres_available: None) -> None:
    schema = f"{new_prefix().rstrip('.')}_stats"
    engine = create_async_engine(PG_URL)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.execute(text(f'CREATE TABLE "{schema}".busy (id int)'))
            await conn.execute(text(f'CREATE TABLE "{schema}".quiet (id int)'))
            await conn.execute(text(f'INSERT INTO "{schema}".busy SELECT generate_series(1, 200)'))
            await conn.execute(text(f'INSERT INTO "{schema}".quiet SELECT generate_series(1, 10)'))
            await conn.execute(text(f'UPDATE "{schema}".busy SET id = id + 1'))  # 200 dead
            autovacuum = await conn.scalar(text("SHOW autovacuum"))

        async def analysed(column: str = "last_analyze") -> set[str]:
            async with engine.connect() as conn:
                return set((await conn.execute(text(
                    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = :s"
                    f" AND {column} IS NOT NULL"), {"s": schema})).scalars())

        async with autovacuum_stand_in([schema], every=0.2) as done:
            for _ in range(50):  # the server's statistics reach pg_stat within a second
                if await analysed() or autovacuum == "on":
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)  # a few more rounds: the quiet table must stay alone
        if autovacuum == "off":
            assert done.running
            assert await analysed() == {"busy"}  # 10 rows changed: under 50 + 10 %
            assert await analysed("last_vacuum") == {"busy"}  # 200 dead: over 50 + 20 %
            # Analysed once; vacuumed at least once: while another session's transaction
            # (a parallel test's) still sees the 200 dead rows, VACUUM cannot remove them,
            # they stay counted, and the table is due again, as it would be for
            # autovacuum at its next round.
            assert done.analysed == 1 and done.vacuumed >= 1
        else:
            assert not done.running and done.analysed == done.vacuumed == 0
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
