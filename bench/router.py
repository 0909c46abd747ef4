"""Router decisions per second from the topic, one instance on PostgreSQL.

A roster of 1,000 agents in 50 teams and 20 escalation paths (chosen by 20 path rules on
the ticket's category, so every decision walks the rule list), loaded from a generated
YAML file exactly as at start-up. One router runs in this process (the real app: consumer,
outbox relay, migrations) against a Tansu broker started here. Two phases:

- burst: ``ROUTER_BENCH_TICKETS`` ``ticket.created`` (default 5,000) produced at once.
  Decisions/s is the tickets over the span between the first and the last decision (from
  the assignment history), so the consumer's group join does not count.
- steady: ``ROUTER_BENCH_STEADY`` more (default 10,000) produced open loop at 1,000/s,
  half the throughput target, as ingest's section measures latency at half its maximum.
  Ten seconds, because a p99 over three (the earlier default: about 250 batches) was
  set by two or three batches and read 15-20 ms in runs where ten seconds read 20-25.

Between the phases the schema is analysed, as autovacuum would have done in a running
system: the router's prepared statements were planned on empty tables, and a plan that
scans a table of 300 rows scans it at 30,000 too.

Decision latency is, for each decision, the time from the consumer runner holding its
batch (a poll's records) to that batch's transaction committed: until it is durable
and its events are in the outbox (every decision of a batch has its batch's latency).
The target applies to the steady phase. In the burst the router is saturated on
purpose: a decision's latency there is the time to apply the batch it came in, which
the batch size (``ESCALATOR_CONSUMER_BATCH_SIZE``) trades against throughput; it is
printed too. (Latency used to be the processing histogram, which timed one handler call
and left out the commit and the inserts the ORM made there; with a batch routed in one
call it would time the call, not a decision, and its 10/25 ms buckets were too coarse
for a 20 ms target.) The time from a ticket's production to its decision committed is
printed too, for what an operator sees end to end: it adds the feed's 5 ms linger and
the broker's delivery, which on Tansu waits for the consumer's fetch deadline
(``consumer_fetch_max_wait_ms``, 50 ms) whenever a record arrives during a waiting fetch.

CPU per decision is this process's CPU time (router, relay, Kafka clients) from the end
of the burst's production to its last decision, over the decisions; SQL statements are
those the router process sent meanwhile, its relay's included (an executemany counts
once: one round trip). Both hold up on a shared machine, where wall-clock figures do not.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.common import PG_URL, ROOT, Report
from scripts.devstack import Broker, free_port

SECTION = "router"
TICKETS = int(os.environ.get("ROUTER_BENCH_TICKETS", 5_000))
#: The steady phase: half the throughput target, open loop, for ten seconds.
RATE, STEADY = 1_000, int(os.environ.get("ROUTER_BENCH_STEADY", 10_000))
AGENTS, TEAMS, PATHS = 1_000, 50, 20


def roster() -> dict[str, Any]:
    teams = [{"id": f"team{t:02d}", "name": f"Team {t}", "department": f"d{t % 5}",
              "lead": f"agent{t * 20:04d}"} for t in range(TEAMS)]
    agents = [{"id": f"agent{a:04d}", "name": f"Agent {a}", "email": f"a{a}@bench.example",
               "team": f"team{a // 20:02d}", "role": "supervisor" if a % 20 == 0 else "agent",
               "max_open_tickets": 10_000, "languages": ["en", "pt"][: 1 + a % 2],
               "skills": [f"cat{a % 7}"]} for a in range(AGENTS)]
    strategies = ["round_robin", "least_loaded", "skills"]
    paths = [{"id": f"path{p:02d}", "name": f"Path {p}", "default": p == 0, "levels": [
        {"name": f"L{n + 1}", "team": f"team{(p * 2 + n) % TEAMS:02d}",
         "strategy": strategies[(p + n) % 3], "ack_timeout_seconds": 600}
        for n in range(3)]} for p in range(PATHS)]
    rules = [{"id": f"rule{p:02d}", "path": f"path{p:02d}", "match": {"category": f"c{p}"}}
             for p in range(PATHS)]
    return {"teams": teams, "agents": agents, "escalation_paths": paths, "path_rules": rules}


def _write_roster(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"router": roster()}))
    return path


class _Timed:
    """Wraps the runner's batch application: (records, seconds from holding them to their
    transaction committed) per batch, and each record's seconds from its production (the
    feed's clock is this machine's) to that commit. Instrumentation only: it calls
    through."""

    def __init__(self, runner: Any) -> None:
        self.batches: list[tuple[int, float]] = []
        self.since_produced: list[float] = []
        self._apply = runner._apply_batch
        runner._apply_batch = self

    async def __call__(self, tp: Any, records: list[Any]) -> bool:
        started = time.perf_counter()
        try:
            return bool(await self._apply(tp, records))
        finally:
            self.batches.append((len(records), time.perf_counter() - started))
            now = time.time()
            self.since_produced.extend(now - record.timestamp / 1000 for record in records)



def _latency(batches: list[tuple[int, float]], pct: float) -> float:
    """Nearest-rank percentile over decisions (each has its batch's latency)."""
    ordered = sorted(batches, key=lambda b: b[1])
    rank, seen = pct / 100 * sum(n for n, _ in ordered), 0
    for n, seconds in ordered:
        seen += n
        if seen >= rank:
            return seconds
    return ordered[-1][1] if ordered else 0.0


def _mean(batches: list[tuple[int, float]]) -> float:
    return sum(n for n, _ in batches) / max(len(batches), 1)


def _tickets(tag: str, first: int, count: int) -> list[tuple[bytes, bytes]]:
    """(key, CloudEvent) of ``count`` new tickets, categories cycling through every rule
    and three that fall through to the default path."""
    from escalator.shared.events import CloudEvent, Customer, Severity, TicketCreated, utcnow

    now, customer = utcnow(), Customer(email="ops@acme.example", name="Acme")
    made = []
    for n in range(first, first + count):
        data = TicketCreated(
            ticket_id=f"{tag}-{n:06d}", external_id=str(n), channel="api", subject="s",
            description="d", severity=Severity.high, status="open",
            category=f"c{n % (PATHS + 3)}", language=["en", "pt"][n % 2], customer=customer,
            created_at=now, updated_at=now)
        made.append((data.ticket_id.encode(),
                     CloudEvent.wrap(data, source="/bench").model_dump_json().encode()))
    return made


async def _send(bootstrap: str, topic: str, tickets: list[tuple[bytes, bytes]],
                rate: float | None = None) -> None:
    """All at once, or paced at ``rate`` per second from the start (open loop)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        start = time.monotonic()
        for n, (key, value) in enumerate(tickets):
            if rate is not None and (ahead := start + n / rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def feed(bootstrap: str, topic: str, tag: str, first: int, count: int, rate: float) -> None:
    """Produce tickets; run in a process of its own (``_feed``)."""
    asyncio.run(_send(bootstrap, topic, _tickets(tag, first, count), rate or None))


async def _feed(bootstrap: str, topic: str, tag: str, first: int, count: int,
                rate: float = 0) -> None:
    """Produce from another process, as ingest would: a producer in the router's own
    event loop would take its CPU and delay its batches, which is not the router's
    cost."""
    code = (f"from bench.router import feed; feed({bootstrap!r}, {topic!r}, {tag!r}, "
            f"{first}, {count}, {rate})")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=ROOT)
    if await child.wait() != 0:
        raise RuntimeError(f"ticket feed failed with exit code {child.returncode}")


async def _routed(probe: AsyncEngine, expected: int) -> int:
    """Wait until ``expected`` tickets have an assignment (or time out); how many do."""
    deadline, done = time.monotonic() + max(120, expected / 20), 0
    while time.monotonic() < deadline:
        async with probe.connect() as conn:
            done = int((await conn.execute(text(
                "SELECT count(*) FROM assignments"))).scalar() or 0)
        if done >= expected:
            break
        await asyncio.sleep(0.1)
    return done


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(report: Report) -> None:
    from escalator.router.main import SPEC
    from escalator.router.settings import RouterSettings
    from escalator.shared.app import create_app
    from escalator.shared.bus import ensure_topics

    log_dir = ROOT / "bench-results"
    broker = Broker(free_port(), log_dir / "router-broker.log")
    broker.start()
    tag = uuid.uuid4().hex[:8]
    config = _write_roster(log_dir / f"router-bench-{tag}.yaml")
    settings = RouterSettings(
        env="test", database_url=PG_URL, db_schema=f"bench_router_{tag}",
        kafka_bootstrap_servers=broker.bootstrap, topic_prefix=f"bench{tag}.",
        consumer_group=f"bench{tag}.router", config_file=config, log_level="WARNING",
        port=free_port(), api_key="bench-router-key-0123456789")
    app = create_app(SPEC, settings, owns_process=True)  # this process is the router's
    probe = create_async_engine(PG_URL, connect_args={
        "server_settings": {"search_path": settings.db_schema}})
    try:
        await ensure_topics(settings)
        async with app.router.lifespan_context(app):
            runtime = app.state.runtime
            timed = _Timed(runtime.runner)
            statements = [0]

            def count(*_: Any) -> None:
                statements[0] += 1

            # The progress polls below use their own engine, so only the router counts.
            event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
            topic = f"{settings.topic_prefix}tickets"
            started = time.monotonic()
            await _feed(broker.bootstrap, topic, tag, 0, TICKETS)
            cpu, statements[0] = _cpu(), 0
            done = await _routed(probe, TICKETS)
            cpu, sent, burst = _cpu() - cpu, statements[0], timed.batches
            wall = time.monotonic() - started
            async with probe.connect() as conn:
                span = (await conn.execute(text(
                    "SELECT extract(epoch FROM max(at) - min(at)) FROM assignment_history"
                ))).scalar()
            timed.batches, timed.since_produced = [], []
            # What autovacuum does within a minute of any deployment: without it the
            # router keeps the plans made while its tables were empty, and the routed
            # check scans every assignment (steady p50 17 -> 49 ms over 30 s).
            async with probe.begin() as conn:
                tables = (await conn.execute(text(
                    "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = :s"),
                    {"s": settings.db_schema})).scalars().all()
                await conn.execute(text(f"ANALYZE {', '.join(tables)}"))
            await _feed(broker.bootstrap, topic, tag, TICKETS, STEADY, rate=RATE)
            steady_done = await _routed(probe, TICKETS + STEADY) - TICKETS
            rate = done / float(span) if span else 0.0
            report.add(SECTION, f"tickets routed ({AGENTS} agents, {TEAMS} teams, {PATHS} "
                                "paths)", done, "tickets", target=f"{TICKETS}",
                       ok=done >= TICKETS)
            report.add(SECTION, "burst: decisions per second (first→last)", rate, "/s",
                       target="≥ 2,000", ok=rate >= 2_000)
            report.add(SECTION, "burst: wall time incl. group join", wall, "s")
            report.add(SECTION, "burst: decisions per batch", _mean(burst), "")
            report.add(SECTION, "burst: latency p50 (batch read → commit)",
                       _latency(burst, 50) * 1000, "ms")
            report.add(SECTION, "burst: latency p99 (batch read → commit)",
                       _latency(burst, 99) * 1000, "ms")
            report.add(SECTION, "burst: process CPU per decision", cpu / max(done, 1) * 1e6,
                       "µs")
            report.add(SECTION, "burst: SQL statements per decision", sent / max(done, 1), "")
            report.add(SECTION, f"steady {RATE}/s: tickets routed", steady_done, "tickets",
                       target=f"{STEADY}", ok=steady_done >= STEADY)
            report.add(SECTION, f"steady {RATE}/s: decisions per batch",
                       _mean(timed.batches), "")
            p50, p99 = _latency(timed.batches, 50), _latency(timed.batches, 99)
            report.add(SECTION, f"steady {RATE}/s: latency p50 (batch read → commit)",
                       p50 * 1000, "ms")
            report.add(SECTION, f"steady {RATE}/s: latency p99 (batch read → commit)",
                       p99 * 1000, "ms", target="≤ 20 ms", ok=p99 <= 0.020)
            produced = sorted(timed.since_produced)
            for pct in (50, 99):
                at = produced[min(len(produced) - 1, int(len(produced) * pct / 100))] \
                    if produced else 0.0
                report.add(SECTION, f"steady {RATE}/s: p{pct} produced → committed "
                                    "(broker's delivery incl.)", at * 1000, "ms")
    finally:
        broker.stop()
        os.unlink(config)
        # After the service stopped: its relay would otherwise fail on the dropped tables.
        async with probe.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.db_schema}" CASCADE'))
        await probe.dispose()
