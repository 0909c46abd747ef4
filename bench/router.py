"""Router decisions per second from the topic, one instance on PostgreSQL.

A roster of 1,000 agents in 50 teams and 20 escalation paths (chosen by 20 path rules on
the ticket's category, so every decision walks the rule list), loaded from a generated
YAML file exactly as at start-up. One router runs in this process (the real app: consumer,
outbox relay, migrations) against a Tansu broker started here; ``ROUTER_BENCH_TICKETS``
``ticket.created`` events (default 5,000) are produced in one burst, and the section waits
until every one is routed.

- decisions/s: tickets over the span between the first and the last decision's commit
  (from the assignment history), so the consumer's group join does not count.
- p50/p99 decision latency: the shared ``escalator_event_processing_seconds`` histogram
  for ``ticket.created`` (handler time inside the batch transaction), interpolated within
  its buckets.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy import text

from bench.common import PG_URL, ROOT, Report

SECTION = "router"
TICKETS = int(os.environ.get("ROUTER_BENCH_TICKETS", 5_000))
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _histogram_quantile(q: float) -> float:
    """Quantile of the processing histogram for ticket.created, interpolated in buckets."""
    buckets: list[tuple[float, float]] = []
    for metric in REGISTRY.collect():
        if metric.name != "escalator_event_processing_seconds":
            continue
        for sample in metric.samples:
            if (sample.name.endswith("_bucket") and sample.labels.get("type") == "ticket.created"):
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return 0.0
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


async def run(report: Report) -> None:
    from escalator.router.main import SPEC
    from escalator.router.settings import RouterSettings
    from escalator.shared.app import create_app
    from escalator.shared.bus import ensure_topics
    from escalator.shared.events import CloudEvent, Customer, Severity, TicketCreated, utcnow
    from scripts.devstack import Broker

    log_dir = ROOT / "bench-results"
    broker = Broker(_free_port(), log_dir / "router-broker.log")
    broker.start()
    tag = uuid.uuid4().hex[:8]
    config = _write_roster(log_dir / f"router-bench-{tag}.yaml")
    settings = RouterSettings(
        env="test", database_url=PG_URL, db_schema=f"bench_router_{tag}",
        kafka_bootstrap_servers=broker.bootstrap, topic_prefix=f"bench{tag}.",
        consumer_group=f"bench{tag}.router", config_file=config, log_level="WARNING",
        port=_free_port(), api_key="bench-router-key-0123456789")
    app = create_app(SPEC, settings)
    try:
        await ensure_topics(settings)
        async with app.router.lifespan_context(app):
            engine = app.state.runtime.engine
            now = utcnow()
            customer = Customer(email="ops@acme.example", name="Acme")
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                                        linger_ms=5)
            await producer.start()
            started = time.monotonic()
            try:
                for n in range(TICKETS):
                    data = TicketCreated(
                        ticket_id=f"{tag}-{n:06d}", external_id=str(n), channel="api",
                        subject="s", description="d", severity=Severity.high, status="open",
                        category=f"c{n % (PATHS + 3)}", language=["en", "pt"][n % 2],
                        customer=customer, created_at=now, updated_at=now)
                    await producer.send(f"{settings.topic_prefix}tickets",
                                        CloudEvent.wrap(data, source="/bench")
                                        .model_dump_json().encode(), key=data.ticket_id.encode())
                await producer.flush()
            finally:
                await producer.stop()
            deadline = time.monotonic() + max(120, TICKETS / 20)
            done = 0
            while time.monotonic() < deadline:
                async with engine.connect() as conn:
                    done = int((await conn.execute(text(
                        "SELECT count(*) FROM assignments"))).scalar() or 0)
                if done >= TICKETS:
                    break
                await asyncio.sleep(0.5)
            async with engine.connect() as conn:
                span = (await conn.execute(text(
                    "SELECT extract(epoch FROM max(at) - min(at)) FROM assignment_history"
                ))).scalar()
            wall = time.monotonic() - started
            rate = done / float(span) if span else 0.0
            report.add(SECTION, f"tickets routed ({AGENTS} agents, {TEAMS} teams, {PATHS} "
                                "paths)", done, "tickets", target=f"{TICKETS}",
                       ok=done >= TICKETS)
            report.add(SECTION, "decisions per second (first→last decision)", rate, "/s",
                       target="≥ 2,000", ok=rate >= 2_000)
            report.add(SECTION, "burst wall time incl. group join", wall, "s")
            p50, p99 = _histogram_quantile(0.5), _histogram_quantile(0.99)
            report.add(SECTION, "decision latency p50", p50 * 1000, "ms")
            report.add(SECTION, "decision latency p99", p99 * 1000, "ms", target="≤ 20 ms",
                       ok=p99 <= 0.020)
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{settings.db_schema}" CASCADE'))
    finally:
        broker.stop()
        os.unlink(config)
