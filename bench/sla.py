"""SLA timers at scale on PostgreSQL: lateness, burst, restart, memory.

The timers are bulk-loaded with SQL (``generate_series``), not through the broker, and
fired by the real ``TimerLoop`` running in a worker process of its own (``python -m
bench.sla worker SCHEMA``), so its resident memory and a ``kill -9`` restart are real.
The loop writes each breach to the outbox exactly as the service does; no relay runs,
because publishing is the outbox's benchmark, not this one.

Lateness is ``breached_at - due_at`` per clock, read back with SQL (breach grace 0).

Sizes are parameters (environment): ``SLA_BENCH_PENDING`` (1,000,000),
``SLA_BENCH_RATE`` (1,000/s), ``SLA_BENCH_SECONDS`` (60), ``SLA_BENCH_BURST`` (100,000).
The APScheduler reference is not implemented yet.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import PG_URL, ROOT, Report

SECTION = "sla"
PENDING = int(os.environ.get("SLA_BENCH_PENDING", 1_000_000))
RATE = int(os.environ.get("SLA_BENCH_RATE", 1_000))
SECONDS = int(os.environ.get("SLA_BENCH_SECONDS", 60))
BURST = int(os.environ.get("SLA_BENCH_BURST", 100_000))

LOAD = """
INSERT INTO clocks (id, ticket_id, name, cycle, policy_id, target_seconds, severity, status,
                    started_at, due_at, fire_at, next_timer, met_after_breach, version,
                    updated_at, elapsed_seconds, resumed_at)
SELECT md5(:tag || g::text), md5(:tag || g::text), 'first_response', 0, 'bench', 60, 'high',
       'running', now(), t, t, 'breach', false, 1, now(), 0, now()
FROM (SELECT g, CASE WHEN g < :due_count
                     THEN to_timestamp(:first_due + g::float8 / :rate)
                     ELSE now() + interval '30 days' END AS t
      FROM generate_series(0, :count - 1) AS g) AS s
"""


def _settings(schema: str) -> Any:
    from escalator.sla_timer.settings import SlaTimerSettings

    return SlaTimerSettings(env="test", database_url=PG_URL, db_schema=schema,
                            breach_grace_seconds=0.0, timer_batch_size=1000,
                            log_level="WARNING")


async def _worker(schema: str) -> None:
    """The timer loop alone: what fires timers in the service, nothing else."""
    from escalator.shared.db import make_engine, make_sessionmaker
    from escalator.sla_timer.timers import TimerLoop

    settings = _settings(schema)
    engine = make_engine(settings)
    await TimerLoop(settings, make_sessionmaker(engine)).run()


async def _migrate(schema: str) -> AsyncEngine:
    from escalator.shared.db import make_engine
    from escalator.shared.migrations import upgrade
    from escalator.sla_timer.main import SPEC

    settings = _settings(schema)
    engine = make_engine(settings)
    await upgrade(engine, settings, SPEC.migrations)
    return engine


async def _load(engine: AsyncEngine, count: int, due_count: int, first_due: float,
                rate: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(LOAD), {"tag": uuid.uuid4().hex, "count": count,
                                        "due_count": due_count, "first_due": first_due,
                                        "rate": rate})
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE clocks"))


async def _scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.begin() as conn:
        value = (await conn.execute(text(sql), params)).scalar()
    return float(value) if isinstance(value, Decimal) else value


async def _until(engine: AsyncEngine, sql: str, limit: float, **params: Any) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await _scalar(engine, sql, **params):
            return True
        await asyncio.sleep(0.2)
    return False


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _spawn(schema: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.sla", "worker", schema, cwd=ROOT)


#: Every timer due by :b has fired (the timer loop's own partial index answers this; the
#: polls must not scan a million rows several times a second beside the loop).
DRAINED = ("SELECT count(*) = 0 FROM clocks WHERE status = 'running' "
           "AND fire_at <= to_timestamp(:b)")
LATENESS = """SELECT percentile_disc(:p) WITHIN GROUP (ORDER BY
              extract(epoch FROM breached_at - due_at)) FROM clocks
              WHERE due_at BETWEEN to_timestamp(:a) AND to_timestamp(:b)"""


async def run(report: Report) -> None:
    schema = f"bench_sla_{uuid.uuid4().hex[:8]}"
    engine = await _migrate(schema)
    worker: asyncio.subprocess.Process | None = None
    try:
        # 1. Steady: PENDING pending, RATE due per second for SECONDS.
        # The far-off timers first (the slow part), then the window that falls due, so
        # the window starts after the load however long the load took.
        steady = RATE * SECONDS
        started = time.monotonic()
        await _load(engine, max(PENDING - steady, 0), 0, 0.0, RATE)
        report.add(SECTION, f"bulk load {max(PENDING - steady, 0):,} timers (SQL)",
                   time.monotonic() - started, "s")
        first_due = time.time() + 20
        await _load(engine, steady, steady, first_due, RATE)
        worker = await _spawn(schema)
        rss = 0.0
        done = False
        while time.time() < first_due + SECONDS + 60:
            rss = max(rss, _rss_mb(worker.pid))
            done = bool(await _scalar(
                engine, "SELECT count(*) = 0 FROM clocks WHERE status = 'running' "
                "AND fire_at <= to_timestamp(:b)", b=first_due + SECONDS))
            if done and time.time() > first_due + SECONDS:
                break
            await asyncio.sleep(1.0)
        window = {"a": first_due - 60, "b": first_due + SECONDS}
        for label, pct in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            value = await _scalar(engine, LATENESS, p=pct, **window) or 0.0
            target = {"p99": ("≤ 250 ms", value <= 0.25)}.get(label)
            report.add(SECTION, f"steady {RATE}/s lateness {label}", value * 1000, "ms",
                       target=target[0] if target else None, ok=target[1] if target else None)
        report.add(SECTION, f"worker RSS with {PENDING:,} pending", rss, "MB",
                   target="≤ 500 MB", ok=rss <= 500)

        # 2. Burst: BURST timers due in the same second.
        burst_due = time.time() + 15
        async with engine.begin() as conn:
            await conn.execute(text(LOAD.replace("'first_response', 0", "'burst', 0")),
                               {"tag": uuid.uuid4().hex, "count": BURST, "due_count": BURST,
                                "first_due": burst_due, "rate": BURST * 1000})
        fired = await _until(engine, DRAINED, burst_due - time.time() + 300,
                             b=burst_due + 1)
        last = await _scalar(engine, "SELECT extract(epoch FROM max(breached_at)) FROM clocks "
                             "WHERE name = 'burst'")
        took = (last or burst_due) - burst_due
        report.add(SECTION, f"burst of {BURST:,}: all fired after", took, "s",
                   target="≤ 10 s", ok=fired and took <= 10)

        # 3. Restart: kill -9 with PENDING pending; some fall due while it is down.
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        down_due = time.time() + 1
        async with engine.begin() as conn:
            await conn.execute(text(LOAD.replace("'first_response', 0", "'restart', 0")),
                               {"tag": uuid.uuid4().hex, "count": 1000, "due_count": 1000,
                                "first_due": down_due, "rate": 1000})
        await asyncio.sleep(max(down_due + 2 - time.time(), 0))
        restarted = time.time()
        worker = await _spawn(schema)
        await _until(engine, "SELECT count(*) < 1000 FROM clocks WHERE status = 'running' "
                     "AND fire_at <= to_timestamp(:b)", 120, b=down_due + 2)
        resumed = await _scalar(engine, "SELECT extract(epoch FROM min(breached_at)) "
                                "FROM clocks WHERE name = 'restart'")
        resume_s = (resumed or restarted + 120) - restarted
        report.add(SECTION, f"restart with {PENDING:,} pending: firing resumes", resume_s, "s",
                   target="≤ 10 s", ok=resume_s <= 10)
        await _until(engine, DRAINED, 120, b=down_due + 2)
        breached = await _scalar(engine, "SELECT count(*) FROM clocks WHERE status = 'breached'")
        events = await _scalar(engine, "SELECT count(*) FROM outbox "
                               "WHERE event_type = 'sla.breached'")
        report.add(SECTION, "breaches minus breach events (lost/doubled)",
                   float(breached - events), "count", target="= 0", ok=breached == events)
    finally:
        if worker is not None and worker.returncode is None:
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    asyncio.run(_worker(sys.argv[2]))
