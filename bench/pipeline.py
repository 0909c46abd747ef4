"""Pipeline benchmark: the five services together, measured against the parts they use.

Everything runs as it would in production, on one machine: the Tansu broker, PostgreSQL
(a schema per service), the five services as processes (``scripts.devstack``), and a
webhook sink for the notifier. In the same run:

- the limits: a no-op FastAPI endpoint (framework ceiling, the ingest section's app and
  clients) and raw aiokafka produce -> consume of event-sized messages through the same
  broker (transport ceiling);
- a sustained load of mixed channel events (API, portal, chat hand-offs, phone, social,
  raw email, Alertmanager) at ``BENCH_PIPELINE_RATE`` (300/s) for
  ``BENCH_PIPELINE_SECONDS`` (60 s), one in ten with a 5 s first-response target that
  nobody meets: ingest -> assigned (``ticket.assigned`` seen on the topic), ingest ->
  notified (the webhook at the sink) and deadline -> reassigned (the breach's due time to
  the ``ticket.escalated`` it caused), p50/p99/max;
- the maximum sustained rate: short steps of rising rate until ingest -> assigned p99
  passes 1 s or the senders fall behind;
- resident memory of every service, idle and at its peak under the load;
- where the machine's CPU went during that load, per ticket (the services, the broker,
  the PostgreSQL server, this process), and the events produced and consumed per
  ticket with the ratio to the transport ceiling they leave possible;
- a scale-out run: a burst of API tickets through the batch endpoint (so ingest's HTTP
  path is not the limit) with one router, sla-timer and notifier, then the same with a
  second replica of each; and what was done twice over the whole run (a ticket assigned
  twice at level 0, a clock breached twice, a webhook delivered twice).

Bounded: each phase has its rate and length, every wait a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import httpx
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import (
    PG_URL,
    ROOT,
    RawHttpClient,
    Report,
    autovacuum_stand_in,
    open_loop,
    percentile,
    postgres_cpu,
    process_cpu,
)
from bench.ingest import closed_loop, noop_app  # noqa: F401 - noop_app runs in its process
from bench.ingest import event as noop_event
from escalator.shared.bus import ensure_topics
from escalator.shared.settings import ServiceSettings
from scripts.chaos import Sink
from scripts.devstack import SERVICES, Broker, ServiceProcess, Stack, free_port

SECTION = "pipeline"
API_KEY = "bench-admin-key"
RATE = float(os.environ.get("BENCH_PIPELINE_RATE", "300"))
SECONDS = float(os.environ.get("BENCH_PIPELINE_SECONDS", "60"))
STEPS = [float(r) for r in os.environ.get("BENCH_PIPELINE_STEPS",
                                                      "25,50,100,150,200,300").split(",")]
STEP_SECONDS = float(os.environ.get("BENCH_PIPELINE_STEP_SECONDS", "15"))
BURST = int(os.environ.get("BENCH_PIPELINE_BURST", "6000"))
BREACH_SECONDS = 5
DEGRADED_P99 = 1.0  # s: ingest -> assigned beyond this is no longer "sustained"
SCALED = ("router", "sla-timer", "notifier")


# -- the events -----------------------------------------------------------------------

def _email(n: int, run: str) -> bytes:
    return (f"From: Customer {n % 400} <c{n % 400}@shop{n % 40}.example>\r\n"
            f"To: support@helpdesk.example\r\nSubject: Order {n} stuck in payment\r\n"
            f"Message-ID: <{run}-{n}@mail.shop.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Hello, order {n} has been stuck in 'payment pending' since this morning.\r\n"
            "Can you check?\r\n\r\n-- \r\nSent from my phone\r\n").encode()


def api_event(n: int, run: str) -> dict[str, object]:
    return {"external_id": f"{run}-{n}", "subject": f"Export {n} is slow", "severity": "medium",
            "description": "The CSV export takes minutes for a small account.",
            "customer": {"email": f"user{n % 300}@corp{n % 30}.example", "name": "A User"}}


def channel_event(n: int, run: str) -> tuple[str, bytes, str]:
    """Request ``n`` of the mix: (path, body, content type). One in ten is an API ticket
    in the short-SLA category, so its first-response clock breaches during the run."""
    slot = n % 20
    if slot in (0, 10):
        return "/v1/channels/api/events", json.dumps({
            "external_id": f"{run}-{n}", "subject": f"Checkout fails for order {n}",
            "description": "Card payments fail with error 502 since 09:10 UTC.",
            "severity": "high", "category": "bench-breach",
            "customer": {"email": f"ops{n % 50}@acme.example", "name": "Acme Ops"}}).encode(), \
            "application/json"
    if slot in (1, 2, 3, 4):
        return "/v1/channels/api/events", json.dumps(api_event(n, run)).encode(), \
            "application/json"
    if slot in (5, 6, 7):
        return "/v1/channels/portal/events", json.dumps({
            "submission_id": f"{run}-{n}", "email": f"p{n % 200}@portal{n % 20}.example",
            "name": "Portal User", "category": "billing", "subject": f"Invoice {n} is wrong",
            "description": "<p>The invoice shows last month's plan.</p>",
            "requested_priority": "normal", "language": "en"}).encode(), "application/json"
    if slot in (8, 9):
        return "/v1/channels/chat/events", json.dumps({
            "kind": "handoff", "session_id": f"{run}-{n}",
            "visitor": {"name": "Chat Visitor", "email": f"v{n % 200}@chat.example"},
            "text": "The bot could not help: orders do not reach the warehouse.",
            "handoff_reason": "intent_not_understood", "language": "en",
            "transcript": [{"from": "visitor", "text": "Orders are stuck.",
                            "at": "2026-11-23T08:01:12Z"},
                           {"from": "bot", "text": "Let me pass you to a person.",
                            "at": "2026-11-23T08:01:14Z"}]}).encode(), "application/json"
    if slot in (11, 12):
        return "/v1/channels/phone/events", json.dumps({
            "call_id": f"{run}-{n}", "caller_number": f"+30 210 555 {n % 10000:04d}",
            "caller_name": "Caller", "agent": "bruno", "queue": "support-en",
            "ivr_path": ["language:en", "support"], "started_at": "2026-11-23T07:55:02Z",
            "duration_seconds": 240, "subject": "Login fails",
            "notes": "Customer cannot log in since the password reset."}).encode(), \
            "application/json"
    if slot in (13, 14):
        return "/v1/channels/social/events", json.dumps({
            "platform": "x", "kind": "mention", "post_id": f"{run}-{n}",
            "thread_id": f"{run}-{n}", "post_url": f"https://x.com/u{n % 100}/status/{n}",
            "handle": f"@user{n % 100}", "author_name": "Social User", "public": True,
            "text": "@helpdesk the app keeps logging me out", "language": "en",
            "posted_at": "2026-11-23T08:10:00Z"}).encode(), "application/json"
    if slot in (15, 16, 17, 18):
        return "/v1/channels/email/events", _email(n, run), "message/rfc822"
    return "/v1/channels/monitoring/events", json.dumps({
        "version": "4", "groupKey": f"{{}}:{{alertname=\"Latency{n}\"}}", "status": "firing",
        "receiver": "escalator", "alerts": [{
            "status": "firing", "labels": {"alertname": f"Latency{n}", "severity": "warning",
                                           "service": "checkout"},
            "annotations": {"summary": "Checkout p99 latency above 2s"},
            "startsAt": "2026-11-23T07:59:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": f"{run}-{n}"}]}).encode(), "application/json"


def _ticket_ids(body: bytes) -> list[str]:
    answer = json.loads(body)
    if "tickets" in answer:
        return [t["ticket_id"] for t in answer["tickets"]]
    return [answer["ticket_id"]]


# -- what the system did, as seen from outside ------------------------------------------

@dataclass
class Seen:
    """Every ticket's milestones (time.time()), and what happened more than once."""

    sent: dict[str, float] = field(default_factory=dict)
    assigned: dict[str, float] = field(default_factory=dict)
    #: The hops between: each event's own time (stamped by the service that made it)
    #: and its record's (stamped by the relay that published it).
    created_made: dict[str, float] = field(default_factory=dict)
    created_published: dict[str, float] = field(default_factory=dict)
    assigned_made: dict[str, float] = field(default_factory=dict)
    assigned_published: dict[str, float] = field(default_factory=dict)
    notified: dict[str, float] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)
    reassigned: dict[str, float] = field(default_factory=dict)
    short: set[str] = field(default_factory=set)  #: tickets in the short-SLA category
    first_assignments: Counter[str] = field(default_factory=Counter)
    breaches: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)  # webhook id -> received
    collected: int = 0  # how much of the sink's log is counted above

    def latencies(self, start: dict[str, float], end: dict[str, float],
                  tickets: set[str]) -> list[float]:
        return [end[t] - start[t] for t in tickets if t in start and t in end]


class Observer:
    """Reads the assignments and sla topics from their end, as a dashboard would."""

    def __init__(self, bootstrap: str, prefix: str, seen: Seen) -> None:
        self.seen = seen
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                         fetch_max_wait_ms=20, max_poll_records=2000)
        self.topics = [f"{prefix}tickets", f"{prefix}assignments", f"{prefix}sla"]
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        parts = [TopicPartition(t, p) for t in self.topics
                 for p in self.consumer.partitions_for_topic(t) or ()]
        if not parts:  # metadata not fetched yet
            await self.consumer.topics()
            parts = [TopicPartition(t, p) for t in self.topics
                     for p in self.consumer.partitions_for_topic(t) or ()]
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        seen = self.seen
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batches.values():
                for record in records:
                    event = json.loads(record.value or b"{}")
                    ticket, data = event.get("subject", ""), event.get("data", {})
                    kind = event.get("type")
                    if kind == "ticket.created":
                        seen.created_made.setdefault(ticket, _epoch(event["time"]))
                        seen.created_published.setdefault(ticket, record.timestamp / 1e3)
                    elif kind == "ticket.assigned":
                        if ticket not in seen.assigned:
                            seen.assigned[ticket] = now
                            seen.assigned_made[ticket] = _epoch(event["time"])
                            seen.assigned_published[ticket] = record.timestamp / 1e3
                        if data.get("level") == 0 and not data.get("reassignment"):
                            seen.first_assignments[ticket] += 1
                    elif kind == "ticket.escalated" and data.get("trigger") == "sla_breach":
                        seen.reassigned.setdefault(ticket, now)
                    elif kind == "sla.breached":
                        seen.breaches[(ticket, data.get("clock", ""),
                                       int(data.get("cycle", 0)))] += 1
                        if data.get("clock") == "first_response":
                            seen.due.setdefault(ticket, _epoch(data["due_at"]))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.consumer.stop()


class Totals(NamedTuple):
    """Events produced and consumed by all services, and the CPU seconds each service
    spent in garbage collection."""

    produced: float
    consumed: float
    collecting: dict[str, float]


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# -- the system -------------------------------------------------------------------------

def _config(path: Path) -> Path:
    config = yaml.safe_load((ROOT / "config" / "escalator.yaml").read_text())
    config["sla"]["policies"].insert(0, {"id": "bench-breach",
                                         "match": {"category": "bench-breach"},
                                         "first_response": f"PT{BREACH_SECONDS}S"})
    for agent in config["router"]["agents"]:
        agent["max_open_tickets"] = 1_000_000  # measure the pipeline, not queueing
    path.write_text(yaml.safe_dump(config))
    return path


class System:
    """Broker, sink, and the five services on PostgreSQL, with replicas on demand."""

    def __init__(self, workdir: Path) -> None:
        run = uuid.uuid4().hex[:8]
        self.prefix = f"benchp{run}."
        self.broker = Broker(free_port(), workdir / "pipeline-broker.log")
        self.sink = Sink(free_port())
        self.log = (workdir / "pipeline-services.log").open("w")
        self.stack = Stack(
            base_env={
                "ESCALATOR_ENV": "test", "ESCALATOR_DATABASE_URL": PG_URL,
                "ESCALATOR_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
                "ESCALATOR_TOPIC_PREFIX": self.prefix, "ESCALATOR_API_KEY": API_KEY,
                "ESCALATOR_CONFIG_FILE": str(_config(workdir / "pipeline-escalator.yaml")),
                "ESCALATOR_LOG_LEVEL": "WARNING",
                "ESCALATOR_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            },
            per_service={name: {
                "ESCALATOR_DB_SCHEMA": f"bench_pipeline_{run}_{name.replace('-', '_')}",
                "ESCALATOR_CONSUMER_GROUP": f"{self.prefix}{name}",
                **({"ESCALATOR_WEBHOOK_URL": f"http://127.0.0.1:{self.sink.port}/hooks"}
                   if name == "notifier" else {}),
            } for name in SERVICES},
            ports={name: free_port() for name in SERVICES}, log=self.log)
        self.replicas: list[ServiceProcess] = []
        self._sink_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.broker.start()
        self._sink_task = asyncio.create_task(self.sink.server.serve())
        await ensure_topics(ServiceSettings(kafka_bootstrap_servers=self.broker.bootstrap,
                                            topic_prefix=self.prefix, topic_partitions=3))
        await asyncio.to_thread(self.stack.start)
        await asyncio.to_thread(self.stack.wait_ready, 120)

    async def add_replicas(self) -> None:
        """A second process of each scaled service: same schema, same consumer group."""
        for name in SCALED:
            first = self.stack.processes[name]
            replica = ServiceProcess(name, free_port(), {**first.env}, self.log)
            replica.env["ESCALATOR_PORT"] = str(replica.port)
            replica.start()
            self.replicas.append(replica)
        deadline = time.monotonic() + 90
        while not all([await asyncio.to_thread(r.ready) for r in self.replicas]):
            if time.monotonic() > deadline:
                raise RuntimeError("replicas not ready in 90 s")
            await asyncio.sleep(0.2)

    def rss_mb(self) -> dict[str, float]:
        """Resident memory per service (the largest replica when scaled)."""
        result: dict[str, float] = {}
        for proc in [*self.stack.processes.values(), *self.replicas]:
            if proc.process is None or proc.process.poll() is not None:
                continue
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{proc.process.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        mb = int(line.split()[1]) / 1024
                        result[proc.name] = max(result.get(proc.name, 0.0), mb)
        return result

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU used so far per service (replicas summed)."""
        result: dict[str, float] = {}
        for proc in [*self.stack.processes.values(), *self.replicas]:
            if proc.process is not None:
                result[proc.name] = result.get(proc.name, 0.0) + process_cpu(proc.process.pid)
        return result

    def other_cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by what shares the machine with the services: the broker,
        the PostgreSQL server (every ``postgres`` process: on the bench machine nothing
        else uses it) and this process (load generator, topic observer, webhook sink)."""
        broker = self.broker.process
        return {"broker": process_cpu(broker.pid) if broker is not None else 0.0,
                "PostgreSQL": postgres_cpu(), "load generator": process_cpu(os.getpid())}

    async def totals(self) -> Totals:
        """What the services' metrics have counted so far (replicas summed)."""
        produced = consumed = 0.0
        collecting: dict[str, float] = {}
        async with httpx.AsyncClient(timeout=5) as client:
            for proc in [*self.stack.processes.values(), *self.replicas]:
                text = (await client.get(f"http://127.0.0.1:{proc.port}/metrics")).text
                for line in text.splitlines():
                    if line.startswith("escalator_events_produced_total{"):
                        produced += float(line.rsplit(" ", 1)[1])
                    elif line.startswith("escalator_events_consumed_total{"):
                        consumed += float(line.rsplit(" ", 1)[1])
                    elif line.startswith("escalator_gc_cpu_seconds_sum{"):
                        collecting[proc.name] = (collecting.get(proc.name, 0.0)
                                                 + float(line.rsplit(" ", 1)[1]))
        return Totals(produced, consumed, collecting)

    async def stop(self) -> None:
        for replica in self.replicas:
            replica.terminate()
        for replica in self.replicas:
            await asyncio.to_thread(replica.wait)
        await asyncio.to_thread(self.stack.stop)
        self.sink.server.should_exit = True
        if self._sink_task is not None:
            await self._sink_task
        self.broker.stop()
        self.log.close()
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(PG_URL)
        async with engine.begin() as conn:
            for name in SERVICES:
                schema = self.stack.per_service[name]["ESCALATOR_DB_SCHEMA"]
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


# -- the phases -------------------------------------------------------------------------

async def drive(url: str, rate: float, seconds: float, run: str, seen: Seen
                ) -> tuple[set[str], float, int]:
    """The mix at ``rate`` (open loop): (tickets accepted, the rate offered, errors).
    A ticket's clock starts when its request was due."""
    tickets: set[str] = set()
    errors = 0

    async def send(client: RawHttpClient, n: int, due: float) -> None:
        nonlocal errors
        status, answer = await client.post(*channel_event(n, run))
        if status != 202:
            errors += 1
            return
        for ticket in _ticket_ids(answer):
            seen.sent.setdefault(ticket, due)
            tickets.add(ticket)
            if n % 20 in (0, 10):  # channel_event's short-SLA slots
                seen.short.add(ticket)

    offered = await open_loop(url, rate, seconds, {"Authorization": f"Bearer {API_KEY}"}, send)
    return tickets, offered, errors


async def settle(seen: Seen, sink: Sink, tickets: set[str], timeout: float = 180) -> None:
    """Until every accepted ticket was assigned and notified, and every short-SLA one
    reassigned after its breach (or the deadline): the last tickets breach seconds after
    they are notified, and a count taken before would miss their escalations."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        collect_notified(sink, seen)
        if all(t in seen.assigned and t in seen.notified for t in tickets) and all(
                t in seen.reassigned for t in seen.short & tickets):
            return
        await asyncio.sleep(0.5)


def collect_notified(sink: Sink, seen: Seen) -> None:
    """Take the sink's new deliveries: the first per ticket, and the count per webhook id."""
    for item in sink.received[seen.collected:]:
        seen.notified.setdefault(item.ticket, item.at)
        seen.deliveries[item.delivery] += 1
    seen.collected = len(sink.received)


async def burst(url: str, count: int, run: str, seen: Seen) -> set[str]:
    """``count`` API tickets through the batch endpoint, so ingest is not the limit and
    the burst measures what comes after it (routing, clocks, notifications)."""
    tickets: set[str] = set()
    host, port = url.removeprefix("http://").split(":")
    async with RawHttpClient(host, int(port), {"Authorization": f"Bearer {API_KEY}"}) as c:
        for start in range(0, count, 1000):
            events = [api_event(n, run) for n in range(start, min(start + 1000, count))]
            sent_at = time.time()
            status, answer = await c.post_json("/v1/channels/api/events:batch",
                                               {"events": events})
            if status != 200:
                raise RuntimeError(f"batch refused: {status} {answer[:300]!r}")
            for result in json.loads(answer)["results"]:
                seen.sent.setdefault(result["ticket_id"], sent_at)
                tickets.add(result["ticket_id"])
    return tickets


async def transport_ceiling(bootstrap: str, count: int = 30_000) -> float:
    """Raw aiokafka: ``count`` 1 KiB messages produced and consumed, per second."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=20)
    await producer.start()
    await consumer.start()
    try:
        payload = b"x" * 1024
        await producer.send_and_wait(topic, payload)  # the topic exists, the consumer sees it
        await consumer.getone()
        began = time.perf_counter()

        async def produce() -> None:
            pending = [await producer.send(topic, payload, key=str(i).encode())
                       for i in range(count)]
            await asyncio.gather(*pending)

        sender = asyncio.create_task(produce())
        received = 0
        deadline = time.monotonic() + 120
        while received < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            received += sum(len(r) for r in batches.values())
        await sender
        return received / (time.perf_counter() - began)
    finally:
        await consumer.stop()
        await producer.stop()


async def run(report: Report) -> None:
    workdir = ROOT / "bench-results"
    workdir.mkdir(exist_ok=True)
    system = System(workdir)
    seen = Seen()
    noop_port = free_port()
    noop = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "bench.ingest:noop_app", "--port", str(noop_port),
        "--log-level", "warning", "--no-access-log", cwd=ROOT)
    observer: Observer | None = None
    statistics = contextlib.AsyncExitStack()
    try:
        await system.start()
        stand_in = await statistics.enter_async_context(autovacuum_stand_in(
            [env["ESCALATOR_DB_SCHEMA"] for env in system.stack.per_service.values()]))
        url = f"http://127.0.0.1:{system.stack.ports['ingest']}"

        # The limits, measured in the same run on the same machine.
        from bench.ingest import _wait_http

        await _wait_http(f"http://127.0.0.1:{noop_port}")
        framework, _, _ = await closed_loop(f"http://127.0.0.1:{noop_port}", 8, 32,
                                            lambda n: noop_event(n, "noop"))
        noop.terminate()
        await noop.wait()
        report.add(SECTION, "framework ceiling: no-op FastAPI (32 clients)", framework, "req/s")
        transport = await transport_ceiling(system.broker.bootstrap)
        report.add(SECTION, "transport ceiling: raw aiokafka 1 KiB", transport, "msg/s")

        before = system.cpu_seconds()
        await asyncio.sleep(10)
        after = system.cpu_seconds()
        for name, mb in sorted(system.rss_mb().items()):
            report.add(SECTION, f"RSS idle: {name}", mb, "MB", target="<= 150 MB", ok=mb <= 150)
            report.add(SECTION, f"CPU idle: {name}", (after[name] - before[name]) / 10, "cores")

        observer = Observer(system.broker.bootstrap, system.prefix, seen)
        await observer.start()
        # The maximum sustained rate, first, on a system with no backlog: rising steps
        # until latency degrades (each step is drained before the next).
        best = 0.0
        for step_rate in STEPS:
            step_tickets, step_offered, step_errors = await drive(
                url, step_rate, STEP_SECONDS, f"step{step_rate:.0f}", seen)
            await settle(seen, system.sink, step_tickets)
            p99 = percentile(seen.latencies(seen.sent, seen.assigned, step_tickets), 99)
            kept_up = step_offered >= 0.95 * step_rate and step_errors == 0
            done = all(t in seen.assigned for t in step_tickets)
            print(f"    step {step_rate:.0f}/s: offered {step_offered:.0f}/s, "
                  f"ingest -> assigned p99 {p99 * 1e3:.0f} ms", flush=True)
            if not (kept_up and done and p99 <= DEGRADED_P99):
                break
            best = step_rate
        report.add(SECTION, f"max sustained rate (p99 <= {DEGRADED_P99:.0f} s)", best,
                   "events/s", target=">= 0.25 x transport", ok=best >= 0.25 * transport)
        report.add(SECTION, "max sustained rate / transport ceiling", best / transport, "x")
        report.add(SECTION, "max sustained rate / framework ceiling", best / framework, "x")

        peak: dict[str, float] = {}

        async def sample() -> None:
            while True:
                for name, mb in system.rss_mb().items():
                    peak[name] = max(peak.get(name, 0.0), mb)
                await asyncio.sleep(1)

        sampler = asyncio.create_task(sample())
        counts_before = await system.totals()
        cpu_before = {**system.cpu_seconds(), **system.other_cpu_seconds()}
        wall_before = time.monotonic()
        tickets, offered, errors = await drive(url, RATE, SECONDS, "steady", seen)
        await settle(seen, system.sink, tickets)
        sampler.cancel()
        cpu_after = {**system.cpu_seconds(), **system.other_cpu_seconds()}
        wall = time.monotonic() - wall_before
        counts_after = await system.totals()
        # Where the machine's CPU went while the load ran and drained: every process of
        # the run, so "saturated" is a measured sum, not a guess.
        busy = 0.0
        for name in sorted(cpu_after):
            used = cpu_after[name] - cpu_before.get(name, 0.0)
            busy += used
            report.add(SECTION, f"steady: CPU per ticket, {name}",
                       used / max(len(tickets), 1) * 1e3, "ms")
            report.add(SECTION, f"steady: CPU share, {name}", used / wall, "cores")
        report.add(SECTION, "steady: CPU per ticket, everything above",
                   busy / max(len(tickets), 1) * 1e3, "ms")
        report.add(SECTION, f"steady: machine busy (of {os.cpu_count()} cores)", busy / wall,
                   "cores")
        # What one ticket asks of the broker: each event is produced once and consumed by
        # every service that subscribes to its topic. The transport ceiling moves each
        # message through once each way, so (if a fetch costs about what a produce does)
        # a ticket weighs (produced + consumed) / 2 of its messages.
        produced = counts_after.produced - counts_before.produced
        consumed = counts_after.consumed - counts_before.consumed
        # The collector stops the service's event loop while it runs: its share of each
        # service's CPU says what objects kept alive or in cycles (a session's state,
        # say) cost it.
        for name, seconds in sorted(counts_after.collecting.items()):
            used = cpu_after[name] - cpu_before.get(name, 0.0)
            collected = seconds - counts_before.collecting.get(name, 0.0)
            report.add(SECTION, f"steady: garbage collection share of CPU, {name}",
                       collected / max(used, 1e-9) * 100, "%")
        per_ticket = max(len(tickets), 1)
        report.add(SECTION, "steady: events produced per ticket", produced / per_ticket,
                   "events")
        report.add(SECTION, "steady: events consumed per ticket", consumed / per_ticket,
                   "events")
        if produced + consumed:
            report.add(SECTION, "transport-bound ratio for the pipeline: 2 x tickets / "
                       "(produced + consumed)", 2 * per_ticket / (produced + consumed), "x")
        breaching = {t for t in tickets if t in seen.due}
        assigned = seen.latencies(seen.sent, seen.assigned, tickets)
        notified = seen.latencies(seen.sent, seen.notified, tickets)
        reassigned = seen.latencies(seen.due, seen.reassigned, breaching)
        label = f"{RATE:.0f}/s for {SECONDS:.0f} s"
        report.add(SECTION, f"steady {label}: offered rate", offered, "events/s")
        report.add(SECTION, "steady: tickets accepted / errors", len(tickets), "tickets",
                   ok=errors == 0)
        report.add(SECTION, "steady: assigned / accepted", len(assigned) / max(len(tickets), 1),
                   "ratio", ok=len(assigned) == len(tickets))
        report.add(SECTION, "steady: notified / accepted (when settled)",
                   len(notified) / max(len(tickets), 1), "ratio", ok=len(notified) == len(tickets))
        # Where ingest -> assigned goes: the request until ingest made the event, its
        # relay, the router (broker, fetch and decision), its relay, the observer's fetch.
        hops = (("sent", seen.sent), ("ingest made", seen.created_made),
                ("published", seen.created_published), ("router made", seen.assigned_made),
                ("published", seen.assigned_published), ("seen", seen.assigned))
        for (start, a), (end, b) in zip(hops, hops[1:], strict=False):
            values = seen.latencies(a, b, tickets)
            for q in (50, 99):
                report.add(SECTION, f"hop {start} -> {end} p{q}",
                           percentile(values, q) * 1e3, "ms")
        for name, values, target in (("ingest -> assigned", assigned, 0.25),
                                     ("ingest -> notified", notified, None),
                                     ("deadline -> reassigned", reassigned, None)):
            p99 = percentile(values, 99)
            report.add(SECTION, f"{name} p50", percentile(values, 50) * 1e3, "ms")
            report.add(SECTION, f"{name} p99", p99 * 1e3, "ms",
                       target=None if target is None else f"<= {target * 1e3:.0f} ms",
                       ok=None if target is None else p99 <= target)
            report.add(SECTION, f"{name} max", max(values, default=0.0) * 1e3, "ms")
        short = len(seen.short & tickets)
        report.add(SECTION, "steady: first-response breaches reassigned", len(reassigned),
                   "tickets", target=f"{short} (every short-SLA ticket)",
                   ok=len(reassigned) == short)
        for name, mb in sorted(peak.items()):
            report.add(SECTION, f"RSS under load: {name}", mb, "MB", target="<= 400 MB",
                       ok=mb <= 400)

        # Scale-out: the same burst through one and then two of each scaled service.
        rates = []
        for replicas in (1, 2):
            if replicas == 2:
                await system.add_replicas()
                await asyncio.sleep(10)  # let both groups settle their rebalance
            tickets = await burst(url, BURST, f"burst{replicas}", seen)
            began = min(seen.sent[t] for t in tickets)
            await settle(seen, system.sink, tickets)
            finished = max([seen.assigned.get(t, 0.0) for t in tickets]
                           + [seen.notified.get(t, 0.0) for t in tickets])
            rates.append(len(tickets) / max(finished - began, 1e-9))
            report.add(SECTION, f"scale-out: burst of {len(tickets)} (batch), {replicas} "
                       "replica(s), assigned and notified", rates[-1], "tickets/s")
        report.add(SECTION, "scale-out: gained with 2 replicas", rates[1] / rates[0], "x")

        collect_notified(system.sink, seen)
        twice = (sum(1 for n in seen.first_assignments.values() if n > 1)
                 + sum(1 for n in seen.breaches.values() if n > 1)
                 + sum(1 for n in seen.deliveries.values() if n > 1))
        report.add(SECTION, "done twice (assignments, breaches, webhooks)", twice, "count",
                   target="0", ok=twice == 0)
        stand_in.report(report, SECTION)
    finally:
        try:
            await statistics.aclose()
        finally:
            if noop.returncode is None:
                noop.terminate()
                await noop.wait()
            if observer is not None:
                await observer.stop()
            await system.stop()
