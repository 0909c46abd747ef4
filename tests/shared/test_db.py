"""Engines: a pooled connection the server closed is replaced, not handed out; state kept
for a transaction goes with it."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from sqlalchemy import text

from escalator.shared.db import make_engine, make_sessionmaker, per_transaction, transaction_info
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


class _Held:
    """Per-transaction state as the router's keeps it: it refers to its transaction."""

    def __init__(self, transaction: Any) -> None:
        self.transaction = transaction


async def test_state_held_for_a_transaction_is_freed_as_the_transaction_ends(
    env: Env,
) -> None:
    """Such state refers to its transaction, which refers to the session holding the
    state: kept in ``session.info`` it was a cycle only the garbage collector freed, and
    those collections paused the router for 3-7 ms each. With the collector off, the state
    outlives a savepoint and is gone the moment its transaction ends; ``per_transaction``
    loads once per transaction."""
    engine = make_engine(env.settings(ProbeSettings))
    loads: list[int] = []

    async def load() -> int:
        loads.append(1)
        return len(loads)

    gc.disable()
    try:
        async with make_sessionmaker(engine)() as session:
            async with session.begin():
                held = _Held(session.sync_session.get_transaction())
                transaction_info(session)["state"] = held
                freed = weakref.ref(held)
                del held
                async with session.begin_nested():
                    await session.execute(text("SELECT 1"))
                assert freed() is not None
                assert await per_transaction(session, "config", load) == 1
                assert await per_transaction(session, "config", load) == 1
            assert freed() is None
            async with session.begin():
                assert await per_transaction(session, "config", load) == 2
    finally:
        gc.enable()
        await engine.dispose()


async def _plan_after_growth(conn: Any, query: Any, empty: str, full: str, fill: str) -> str:
    """The plan of ``query`` prepared (and used past the point where PostgreSQL settles on
    a generic plan) while its table was empty, once ``fill`` has grown the table."""
    from sqlalchemy.dialects import postgresql

    sql = str(query.compile(dialect=postgresql.asyncpg.dialect()))
    await conn.execute(text(f"PREPARE lookup AS {sql}"))
    for _ in range(6):
        await conn.execute(text(f"EXECUTE lookup({empty})"))
    await conn.execute(text(fill))
    plan = "\n".join((await conn.execute(text(f"EXPLAIN EXECUTE lookup({full})"))).scalars())
    await conn.execute(text("DEALLOCATE lookup"))
    return plan


def _probes(plan: str) -> bool:
    return "Index" in plan and "Seq Scan" not in plan and "Hash" not in plan


async def test_held_and_per_key_probe_the_index_even_with_a_plan_made_on_an_empty_table(
    pg_env: Env,
) -> None:
    """``held`` answers which keys a table holds, ``per_key`` fetches the rows of many
    keys. A prepared statement keeps the plan it got while its table was empty (until the
    table is analysed), so that plan must already probe the key's index: a hash join
    there reads the whole table per lookup (ingest's conversation lookup: 24 ms at 10,000
    tickets; the sla-timer's clock read)."""
    from sqlalchemy import (
        Column,
        DateTime,
        MetaData,
        String,
        Table,
        Text,
        UniqueConstraint,
        select,
    )

    from escalator.shared.db import held, per_key

    settings = pg_env.settings(ProbeSettings)
    metadata = MetaData()
    threads = Table("threads", metadata, Column("id", String, primary_key=True),
                    Column("channel", String(20)), Column("key", String(200)),
                    UniqueConstraint("channel", "key"))
    clocks = Table("clocks", metadata, Column("id", String, primary_key=True),
                   Column("ticket_id", String(36)), Column("name", String(40)),
                   Column("started_at", DateTime(timezone=True)), Column("notes", Text),
                   UniqueConstraint("ticket_id", "name"))
    exists = held(threads.c.channel, threads.c.key, dialect="postgresql")
    rows, source = per_key(select(clocks).with_for_update(), clocks.c.ticket_id, "tickets",
                           "postgresql")
    fetch = select(rows.c.id).select_from(source).order_by(rows.c.ticket_id, rows.c.id)
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.db_schema}"'))
            await conn.run_sync(metadata.create_all)
            await conn.execute(threads.insert(), [
                {"id": "1", "channel": "email", "key": "<a@x>"},
                {"id": "2", "channel": "chat", "key": "s-1"}])
            await conn.execute(clocks.insert(), [
                {"id": str(n), "ticket_id": f"t-{n % 2}", "name": f"c{n}"} for n in range(4)])
            found = (await conn.execute(exists, {
                "channel": ["email", "email", "chat", "email"],
                "key": ["<a@x>", "<b@x>", "<a@x>", "<a@x>"]})).all()
            assert sorted(found) == [("email", "<a@x>"), ("email", "<a@x>")]
            assert (await conn.execute(fetch, {"tickets": ["t-1", "t-9"]})).scalars().all() \
                == ["1", "3"]

            await conn.execute(threads.delete())
            plan = await _plan_after_growth(
                conn, exists, "ARRAY['email'], ARRAY['<a@x>']",
                "ARRAY['email', 'email'], ARRAY['<7@x>', '<9@x>']",
                "INSERT INTO threads SELECT g::text, 'email', '<' || g || '@x>' "
                "FROM generate_series(1, 5000) AS g")
            assert _probes(plan), plan
            await conn.execute(clocks.delete())
            plan = await _plan_after_growth(
                conn, fetch, "ARRAY['t-1']", "ARRAY['t-7', 't-9']",
                "INSERT INTO clocks SELECT g::text, 't-' || (g / 2), 'c' || (g % 2), now(), "
                "repeat('n', 200) FROM generate_series(1, 20000) AS g")
            assert _probes(plan), plan
    finally:
        await engine.dispose()
