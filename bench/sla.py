"""SLA timers at scale on PostgreSQL: lateness, burst, restart, memory, and APScheduler 3.

The timers are bulk-loaded with SQL (``generate_series`` in the server, in the order of
their deadlines, as clocks started together are written together; their ids are
random, as the service's are), not through the broker, and fired by the real
``escalator-sla-timer`` process, started the way ``make run`` starts it, with its outbox
relay publishing to a Tansu broker started here: its resident memory, its relay and a
``kill -9`` restart are the real ones.

Lateness is ``breached_at - due_at`` per clock (breach grace 0), read back with SQL:
``breached_at`` is the time the loop fired the clock, in the transaction that queued its
event. Publishing is reported beside it (the relay is shared with every service).

Restart: a batch falls due, the process is killed with ``kill -9`` while it fires them,
and a new one is started; the figures run from the new process's start (imports and
migrations included) to its first fire and to the last overdue timer fired. Every
breached clock must then have exactly one breach event in the outbox.

Reference: the same steady scenario with ``SLA_BENCH_APS_PENDING`` jobs on APScheduler 3
(``BackgroundScheduler`` with its ``SQLAlchemyJobStore``, psycopg) on the same database,
one job per timer, misfires allowed (a late job still runs, so lateness is measured, not
dropped). Its lateness is the job's start minus its run date; a job still not run a
minute after the window counts as late as that moment (its figures are then lower
bounds). It needs ``apscheduler`` and ``psycopg``; without them it reports "not installed".

Sizes are parameters (environment): ``SLA_BENCH_PENDING`` (1,000,000),
``SLA_BENCH_RATE`` (1,000/s), ``SLA_BENCH_SECONDS`` (60), ``SLA_BENCH_BURST`` (100,000),
``SLA_BENCH_RESTART`` (20,000 due while killed), ``SLA_BENCH_APS_PENDING`` (100,000),
``SLA_BENCH_BATCH`` (the service's timer batch size; unset, the service's default).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import PG_URL, ROOT, Report, percentile
from scripts.devstack import Broker, Stack, free_port

SECTION = "sla"
PENDING = int(os.environ.get("SLA_BENCH_PENDING", 1_000_000))
RATE = int(os.environ.get("SLA_BENCH_RATE", 1_000))
SECONDS = int(os.environ.get("SLA_BENCH_SECONDS", 60))
BURST = int(os.environ.get("SLA_BENCH_BURST", 100_000))
RESTART = int(os.environ.get("SLA_BENCH_RESTART", 20_000))
APS_PENDING = int(os.environ.get("SLA_BENCH_APS_PENDING", 100_000))
#: ``ESCALATOR_TIMER_BATCH_SIZE`` for the service, to try other sizes; the figures in
#: the README are the default's.
BATCH = os.environ.get("SLA_BENCH_BATCH")
#: How long the APScheduler reference may run past its window before it is stopped.
APS_PATIENCE = 60
#: Far-off timers are due this much later: never within a run.
FAR = 30 * 86400

LOAD = """
INSERT INTO clocks (id, ticket_id, name, cycle, policy_id, target_seconds, severity, status,
                    started_at, due_at, fire_at, next_timer, met_after_breach, version,
                    updated_at, elapsed_seconds, resumed_at)
SELECT md5(:tag || g::text), md5(:tag || g::text), :name, 0, 'bench', 60, 'high',
       'running', now(), t, t, 'breach', false, 1, now(), 0, now()
FROM (SELECT g, to_timestamp(:first_due + g::float8 / :rate) AS t
      FROM generate_series(0, :count - 1) AS g) AS s
ORDER BY t
"""

#: Every timer due by :b has fired (the timer loop's own partial index answers this; the
#: polls must not scan a million rows several times a second beside the loop).
DRAINED = ("SELECT count(*) = 0 FROM clocks WHERE status = 'running' "
           "AND fire_at <= to_timestamp(:b)")
LATENESS = """SELECT percentile_disc(:p) WITHIN GROUP (ORDER BY
              extract(epoch FROM breached_at - due_at)) FROM clocks WHERE name = 'steady'"""
UNSENT = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"


async def _migrate(schema: str) -> AsyncEngine:
    from escalator.shared.db import make_engine
    from escalator.shared.migrations import upgrade
    from escalator.sla_timer.main import SPEC
    from escalator.sla_timer.settings import SlaTimerSettings

    settings = SlaTimerSettings(env="test", database_url=PG_URL, db_schema=schema)
    engine = make_engine(settings)
    await upgrade(engine, settings, SPEC.migrations)
    return engine


async def _load(engine: AsyncEngine, name: str, count: int, first_due: float,
                rate: float) -> None:
    """``count`` running clocks called ``name``, due from ``first_due`` at ``rate``/s."""
    if count <= 0:
        return
    async with engine.begin() as conn:
        await conn.execute(text(LOAD), {"tag": uuid.uuid4().hex, "name": name, "count": count,
                                        "first_due": first_due, "rate": rate})
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
        await asyncio.sleep(0.1)
    return False


def _rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """The service's peak resident memory, sampled in the background across every phase."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.peak = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            if self.pid is not None:
                self.peak = max(self.peak, _rss_mb(self.pid))
            await asyncio.sleep(0.5)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def run(report: Report) -> None:

    run_id = uuid.uuid4().hex[:8]
    schema = f"bench_sla_{run_id}"
    broker = Broker(free_port(), ROOT / "bench-results" / "sla-broker.log")
    broker.start()
    port = free_port()
    stack = Stack(base_env={
        "ESCALATOR_ENV": "test", "ESCALATOR_DATABASE_URL": PG_URL, "ESCALATOR_DB_SCHEMA": schema,
        "ESCALATOR_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "ESCALATOR_TOPIC_PREFIX": f"bench{run_id}.", "ESCALATOR_LOG_LEVEL": "WARNING",
        "ESCALATOR_CONSUMER_GROUP": f"bench-{run_id}", "ESCALATOR_BREACH_GRACE_SECONDS": "0",
        **({"ESCALATOR_TIMER_BATCH_SIZE": BATCH} if BATCH else {}),
    }, ports={"sla-timer": port})
    engine = await _migrate(schema)
    sampler = Sampler()
    sampler.start()

    def start_service() -> float:
        """Start the service; returns the wall time just before the process was started."""
        started = time.time()
        stack.start(["sla-timer"])
        sampler.pid = stack.processes["sla-timer"].process.pid  # type: ignore[union-attr]
        return started

    try:
        # 1. Steady: PENDING pending, RATE due per second for SECONDS. The far-off timers
        # go in first, then the window, due once the service has had time to start.
        steady = RATE * SECONDS
        began = time.monotonic()
        await _load(engine, "far", PENDING - steady, time.time() + FAR, 1000)
        report.add(SECTION, f"bulk load {PENDING - steady:,} timers (SQL)",
                   time.monotonic() - began, "s")
        first_due = time.time() + 30
        await _load(engine, "steady", steady, first_due, RATE)
        started = start_service()
        await asyncio.to_thread(stack.wait_ready, 60)
        report.add(SECTION, "service ready after start", time.time() - started, "s")
        await _until(engine, DRAINED, first_due + SECONDS + 120 - time.time(),
                     b=first_due + SECONDS)
        for label, pct in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            value = await _scalar(engine, LATENESS, p=pct) or 0.0
            target = ("≤ 250 ms", value <= 0.25) if label == "p99" else (None, None)
            report.add(SECTION, f"steady {RATE}/s lateness {label}", value * 1000, "ms",
                       target=target[0], ok=target[1])
        ours_p99 = await _scalar(engine, LATENESS, p=0.99) or 0.0

        # 2. Burst: BURST timers due at the same instant.
        burst_due = time.time() + 10
        await _load(engine, "burst", BURST, burst_due, BURST * 1000)
        fired = await _until(engine, DRAINED, burst_due - time.time() + 300, b=burst_due + 1)
        last = await _scalar(engine, "SELECT extract(epoch FROM max(breached_at)) "
                             "FROM clocks WHERE name = 'burst'")
        took = (last or burst_due) - burst_due
        report.add(SECTION, f"burst of {BURST:,}: all fired after", took, "s",
                   target="≤ 10 s", ok=fired and took <= 10)
        await _until(engine, f"SELECT ({UNSENT}) = 0", 600)
        sent = await _scalar(engine, "SELECT extract(epoch FROM max(sent_at)) FROM outbox")
        report.add(SECTION, f"burst of {BURST:,}: all published after (relay)",
                   (sent or burst_due) - burst_due, "s")

        # 3. Restart: top up to PENDING pending, RESTART fall due at once; kill -9 while
        # they fire, start a new process while they are overdue.
        pending = await _scalar(engine, "SELECT count(*) FROM clocks WHERE status = 'running'")
        await _load(engine, "far", PENDING - RESTART - pending, time.time() + FAR, 1000)
        down_due = time.time() + 5
        await _load(engine, "restart", RESTART, down_due, RESTART * 1000)
        await asyncio.sleep(max(down_due + 0.3 - time.time(), 0))
        stack.processes["sla-timer"].kill()
        stack.processes["sla-timer"].wait(10)
        before_kill = await _scalar(engine, "SELECT count(*) FROM clocks "
                                    "WHERE name = 'restart' AND status = 'breached'")
        report.add(SECTION, f"restart: fired before kill -9 (of {RESTART:,})", before_kill,
                   "count")
        pending = await _scalar(engine, "SELECT count(*) FROM clocks WHERE status = 'running'")
        await asyncio.sleep(2)
        restarted = start_service()
        caught_up = await _until(engine, DRAINED, 120, b=down_due + 1)
        async with engine.begin() as conn:
            first, last = (await conn.execute(text(
                "SELECT extract(epoch FROM min(breached_at)), extract(epoch FROM "
                "max(breached_at)) FROM clocks WHERE name = 'restart' "
                "AND breached_at > to_timestamp(:t)"), {"t": restarted})).one()
        resumed = float(first or restarted + 120) - restarted
        report.add(SECTION, f"restart with {pending:,} pending: firing resumes", resumed, "s",
                   target="≤ 10 s", ok=resumed <= 10)
        report.add(SECTION, "restart: all overdue fired after",
                   float(last or restarted + 120) - restarted, "s", ok=caught_up)
        breached = await _scalar(engine, "SELECT count(*) FROM clocks WHERE status = 'breached'")
        events = await _scalar(engine, "SELECT count(*) FROM outbox "
                               "WHERE event_type = 'sla.breached'")
        report.add(SECTION, "breaches minus breach events (lost/doubled)",
                   float(breached - events), "count", target="= 0",
                   ok=breached == events and caught_up)
        report.add(SECTION, f"service RSS with {PENDING:,} pending (peak)", sampler.peak, "MB",
                   target="≤ 500 MB", ok=sampler.peak <= 500)
        await asyncio.to_thread(stack.stop)

        # 4. The reference: APScheduler 3, same steady scenario, same database.
        await _apscheduler(report, schema, ours_p99)
    finally:
        sampler.stop()
        await asyncio.to_thread(stack.stop)
        broker.stop()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


async def _apscheduler(report: Report, schema: str, ours_p99: float) -> None:
    try:
        import apscheduler  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as exc:
        print(f"  {SECTION:<10} APScheduler reference: not installed ({exc.name})")
        return
    if APS_PENDING <= 0:
        return
    steady = min(RATE * SECONDS, APS_PENDING)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.sla", "apscheduler", schema, str(APS_PENDING),
        str(steady), cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await worker.communicate()
    result = json.loads(out.decode().strip().splitlines()[-1])
    report.add(SECTION, f"APScheduler 3: load {APS_PENDING:,} jobs", result["load_s"], "s")
    lateness = result["lateness"]
    report.add(SECTION, f"APScheduler 3: jobs not run {APS_PATIENCE} s after the window",
               result["not_run"], "count")
    for label, pct in (("p50", 50.0), ("p99", 99.0), ("max", 100.0)):
        report.add(SECTION, f"APScheduler 3 steady {RATE}/s lateness {label}",
                   percentile(lateness, pct) * 1000, "ms")
    if result["not_run"]:
        print(f"  {SECTION:<10} (jobs not run count as late as the end: a lower bound)")
    theirs = percentile(lateness, 99.0)
    report.add(SECTION, "lateness p99 ratio APScheduler / ours",
               theirs / ours_p99 if ours_p99 > 0 else float("inf"), "x")


#: The APScheduler worker's fire times: (due, started) per job run.
_APS_RUNS: list[tuple[float, float]] = []
_APS_LOCK = threading.Lock()


def aps_fire(due: float) -> None:
    """An APScheduler job: note when it started against when it was due."""
    started = time.time()
    with _APS_LOCK:
        _APS_RUNS.append((due, started))


def _apscheduler_worker(schema: str, pending: int, steady: int) -> None:
    """Runs in its own process: load the jobs, run the scheduler over the window, print."""
    import pickle
    from datetime import UTC, datetime

    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger
    from sqlalchemy import create_engine

    engine = create_engine(PG_URL.replace("+asyncpg", "+psycopg"))
    store = SQLAlchemyJobStore(engine=engine, tableschema=schema)
    scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=UTC)
    store.jobs_t.create(engine, checkfirst=True)
    began = time.monotonic()
    first_due = time.time() + 10 + pending / 10_000  # after the load below
    rows = []
    for n in range(pending):
        due = first_due + n / RATE if n < steady else time.time() + FAR
        run_at = datetime.fromtimestamp(due, UTC)
        job = Job(scheduler, id=f"sla-{n}", func=aps_fire, args=(due,), kwargs={},
                  trigger=DateTrigger(run_at, timezone=UTC), executor="default",
                  name="sla", misfire_grace_time=None, coalesce=True, max_instances=1,
                  next_run_time=run_at)
        # The row exactly as SQLAlchemyJobStore.add_job writes it, in one bulk insert.
        rows.append({"id": job.id, "next_run_time": due,
                     "job_state": pickle.dumps(job.__getstate__(), store.pickle_protocol)})
    with engine.begin() as conn:
        conn.execute(store.jobs_t.insert(), rows)
    load_s = time.monotonic() - began
    scheduler.start()
    deadline = first_due + steady / RATE + APS_PATIENCE
    while time.time() < deadline:
        with _APS_LOCK:
            if len(_APS_RUNS) >= steady:
                break
        time.sleep(0.5)
    scheduler.shutdown(wait=True)
    end = time.time()
    with _APS_LOCK:
        ran = dict(_APS_RUNS)
    due_times = [first_due + n / RATE for n in range(steady)]
    lateness = [ran.get(due, end) - due for due in due_times]
    print(json.dumps({"load_s": load_s, "lateness": lateness,
                      "not_run": steady - len(ran)}), flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["apscheduler"]:
    _apscheduler_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
