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
