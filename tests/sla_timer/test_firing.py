"""Batch firing at the database: each due clock fires once, in batches, with its event in
the same transaction; replicas split the work and take over a dead one's claims."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from escalator.shared.db import make_engine, make_sessionmaker, outbox
from escalator.shared.events import utcnow
from escalator.shared.migrations import upgrade
from escalator.shared.outbox import Relay
from escalator.sla_timer import service
from escalator.sla_timer.calendars import ALWAYS
from escalator.sla_timer.main import SPEC
from escalator.sla_timer.models import FIRST_RESPONSE, Clock, SlaPolicy
from escalator.sla_timer.settings import SlaTimerSettings
from escalator.sla_timer.timers import TimerLoop, due_clocks
from tests.support import Env, explain, wait_until


@dataclass
class Database:
    settings: SlaTimerSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    relay: Relay

    def loop(self) -> TimerLoop:
        return TimerLoop(self.settings, self.sessionmaker)


@contextlib.asynccontextmanager
async def database(env: Env) -> AsyncIterator[Database]:
    settings = env.settings(SlaTimerSettings, timer_batch_size=4, breach_grace_seconds=0.0)
    engine = make_engine(settings)
    await upgrade(engine, settings, SPEC.migrations)
    try:
        sessionmaker = make_sessionmaker(engine)
        relay = Relay(settings, sessionmaker)
        relay.install_commit_hook()
        yield Database(settings, engine, sessionmaker, relay)
    finally:
        await engine.dispose()


@pytest.fixture
async def db(env: Env) -> AsyncIterator[Database]:
    async with database(env) as db:
        yield db


@pytest.fixture
async def pg_db(pg_env: Env) -> AsyncIterator[Database]:
    async with database(pg_env) as db:
        yield db


async def add_clocks(db: Database, count: int, *, started: datetime, target: float,
                     warning_at: float | None = None) -> list[str]:
    policy = SlaPolicy(warning_at=warning_at, warning_before_seconds=None)
    async with db.sessionmaker() as session, session.begin():
        clocks = [service.start_clock(
            session, ticket_id=str(uuid.uuid4()), name=FIRST_RESPONSE, cycle=0, target=target,
            policy=policy, policy_id="p", severity="high", calendar=ALWAYS, calendar_id=None,
            level=None, at=started, grace=0.0) for _ in range(count)]
    return [clock.id for clock in clocks]


async def fire_until_idle(*loops: TimerLoop) -> list[int]:
    """Batches from every loop at once, round after round, until none finds work."""
    batches: list[int] = []
    while True:
        fired = await asyncio.gather(*(loop.fire_due() for loop in loops))
        batches.extend(fired)
        if not any(fired):
            return batches


async def state(db: Database) -> tuple[dict[str, Clock], dict[str, int]]:
    async with db.sessionmaker() as session:
        clocks = {c.id: c for c in (await session.scalars(select(Clock))).all()}
        events = (await session.execute(
            select(outbox.c.event_id, outbox.c.event_type))).all()
    per_id: dict[str, int] = {}
    for event_id, _ in events:
        per_id[event_id] = per_id.get(event_id, 0) + 1
    return clocks, per_id


async def test_due_clocks_fire_once_each_in_batches(db: Database) -> None:
    now = utcnow()
    past = now - timedelta(seconds=10)
    breaching = await add_clocks(db, 9, started=past, target=1.0)
    # Warning due, deadline ahead: warns now, breaches later.
    warning = await add_clocks(db, 3, started=past, target=100.0, warning_at=0.05)
    # Warning and deadline both passed (the service was down): the warning is skipped.
    overdue_warning = await add_clocks(db, 2, started=past, target=1.0, warning_at=0.5)
    future = await add_clocks(db, 1, started=now, target=3600.0)

    batches = await fire_until_idle(db.loop())

    assert sum(batches) == 14 and max(batches) == 4  # batch_size
    clocks, events = await state(db)
    for clock_id in breaching + overdue_warning:
        clock = clocks[clock_id]
        assert (clock.status, clock.fire_at, clock.next_timer) == ("breached", None, None)
        assert clock.breached_at is not None and clock.version == 2
        assert events.pop(f"{clock_id}:breached") == 1
    for clock_id in warning:
        clock = clocks[clock_id]
        assert clock.status == "running" and clock.next_timer == "breach"
        assert clock.warned_at is not None and clock.fire_at == clock.due_at
        assert events.pop(f"{clock_id}:warning") == 1
    assert events == {}
    assert clocks[future[0]].version == 1 and clocks[future[0]].status == "running"
    assert db.relay._wake.is_set()  # the bulk outbox insert wakes the relay on commit


async def test_replicas_split_a_burst_without_firing_one_twice(pg_db: Database) -> None:
    db = pg_db
    ids = await add_clocks(db, 40, started=utcnow() - timedelta(seconds=10), target=1.0)
    other = make_engine(db.settings)  # a second replica: its own connections
    try:
        replica = TimerLoop(db.settings, make_sessionmaker(other))
        batches = await fire_until_idle(db.loop(), replica, db.loop(), replica)
    finally:
        await other.dispose()

    assert sum(batches) == 40
    clocks, events = await state(db)
    assert {c.status for c in clocks.values()} == {"breached"}
    assert events == {f"{clock_id}:breached": 1 for clock_id in ids}


async def test_a_dead_replicas_claimed_timers_are_taken_over(pg_db: Database) -> None:
    db = pg_db
    ids = await add_clocks(db, 10, started=utcnow() - timedelta(seconds=10), target=1.0)
    dead = make_engine(db.settings)
    try:
        # A replica claims a batch, then dies before committing it.
        replica = await dead.connect()
        await replica.begin()
        claimed = (await replica.execute(due_clocks(3, now=utcnow(), lock=True))).all()
        pid = (await replica.execute(text("SELECT pg_backend_pid()"))).scalar_one()

        assert await fire_until_idle(db.loop()) == [4, 3, 0]  # the others, without waiting
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

            async def gone() -> bool:
                alive = await conn.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
                # pg_stat_activity is a snapshot taken once per transaction: without a
                # new one each poll, a first look before the backend died sees it forever.
                await conn.commit()
                return alive == 0

            await wait_until(gone, message="terminated backend still there")
        assert sum(await fire_until_idle(db.loop())) == 3
    finally:
        with contextlib.suppress(Exception):
            await replica.close()
        await dead.dispose()

    clocks, events = await state(db)
    assert {c.status for c in clocks.values()} == {"breached"}
    assert events == {f"{clock_id}:breached": 1 for clock_id in ids}
    assert {row.id for row in claimed} <= set(ids)


async def test_the_partial_index_serves_the_due_query(pg_db: Database) -> None:
    db = pg_db
    query = due_clocks(500, now=utcnow(), lock=True)
    async with db.engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        plan = await explain(conn, query)
    assert "ix_clocks_fire_at_running" in plan, plan

