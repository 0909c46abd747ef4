"""Engines: a pooled connection the server closed is replaced, not handed out."""

from __future__ import annotations

from sqlalchemy import text

from escalator.shared.db import make_engine
from tests.shared.probe.app import ProbeSettings
from tests.support import Env, wait_until


async def test_a_pooled_connection_whose_backend_was_terminated_is_replaced(
    pg_env: Env,
) -> None:
    """What ``pool_pre_ping`` did with three round trips per checkout, for free: the
    backend behind the pool's only connection is terminated (as a PostgreSQL restart
    does), and the next transaction still succeeds, on a new backend."""
    engine = make_engine(pg_env.settings(ProbeSettings, db_pool_size=1))
    other = make_engine(pg_env.settings(ProbeSettings))
    try:
        async with engine.connect() as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
            raw = (await conn.get_raw_connection()).driver_connection
        async with other.connect() as admin:
            assert await admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert raw is not None
        # asyncpg notices the closed socket on the event loop, without a query
        await wait_until(raw.is_closed, message="asyncpg did not see the backend go")
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        await engine.dispose()
        await other.dispose()


async def test_held_finds_keys_by_index_probes_even_with_a_plan_made_on_an_empty_table(
    pg_env: Env,
) -> None:
    """``held`` answers which keys a table holds; and since a prepared statement keeps the
    plan it got while its table was empty (until the table is analysed), that plan must
    already probe the key's index: a hash join there reads the whole table per lookup
    (what ingest's conversation lookup did, 24 ms at 10,000 tickets)."""
    from sqlalchemy import Column, MetaData, String, Table, UniqueConstraint
    from sqlalchemy.dialects import postgresql

    from escalator.shared.db import held

    settings = pg_env.settings(ProbeSettings)
    threads = Table("threads", MetaData(), Column("id", String, primary_key=True),
                    Column("channel", String(20)), Column("key", String(200)),
                    UniqueConstraint("channel", "key"))
    query = held(threads.c.channel, threads.c.key)
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.db_schema}"'))
            await conn.run_sync(threads.metadata.create_all)
            await conn.execute(threads.insert(), [
                {"id": "1", "channel": "email", "key": "<a@x>"},
                {"id": "2", "channel": "chat", "key": "s-1"}])
            found = (await conn.execute(query, {
                "channel": ["email", "email", "chat", "email"],
                "key": ["<a@x>", "<b@x>", "<a@x>", "<a@x>"]})).all()
            assert sorted(found) == [("email", "<a@x>"), ("email", "<a@x>")]

            await conn.execute(threads.delete())
            sql = str(query.compile(dialect=postgresql.asyncpg.dialect()))
            await conn.execute(text(f"PREPARE lookup AS {sql}"))
            for _ in range(6):  # past the point where PostgreSQL settles on a generic plan
                await conn.execute(text("EXECUTE lookup(ARRAY['email'], ARRAY['<a@x>'])"))
            await conn.execute(text(
                "INSERT INTO threads SELECT g::text, 'email', '<' || g || '@x>' "
                "FROM generate_series(1, 5000) AS g"))
            plan = "\n".join((await conn.execute(text(
                "EXPLAIN EXECUTE lookup(ARRAY['email', 'email'], ARRAY['<7@x>', '<9@x>'])"
            ))).scalars())
            assert "Index" in plan and "Seq Scan" not in plan and "Hash" not in plan, plan
    finally:
        await engine.dispose()
