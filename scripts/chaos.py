"""``make chaos``: run the whole system under load while breaking it, then check the books.

Everything is real: the Tansu broker, PostgreSQL (a schema per service), the five
services as processes, and a webhook sink standing in for the receivers. A load
generator sends ``CHAOS_EVENTS`` API-channel tickets spread over ``CHAOS_SECONDS``
(retrying a refused or failed request with the same external id, as a real client
would), acknowledges half of the short-SLA tickets at once, and resolves a share. While
it runs, faults follow a fixed schedule (fractions of the run):

- ``kill -9`` of each service in turn, restarted two seconds later;
- the broker frozen with SIGSTOP for ``CHAOS_FREEZE_SECONDS``, then SIGCONT;
- PostgreSQL restarted (``CHAOS_RESTART_POSTGRES=1``; off in the test suite, whose other
  tests share the cluster);
- a second router replica joining the group and leaving it (two rebalances);
- an unparseable message and an unknown event type on every topic;
- sla-timer and notifier stopped for ``CHAOS_PAUSE_SECONDS`` while events pile up.

Afterwards, read from the topics, the sink and the APIs: every accepted request became
exactly one ticket; every ticket was assigned once at level 0, and no trigger escalated
a ticket twice; every first-response clock that fell due breached once, and none that
was answered in time; no notification went out twice (a resend under the same
webhook-id after a crash is counted separately: receivers drop it, as the Standard
Webhooks spec intends); no message about work on a ticket arrives well after the ticket
was resolved; the dead-letter topic holds exactly the injected poison; after each
``kill -9`` every message below the group's committed offsets is in the service's inbox
(committed at most what was applied: redelivery allowed, loss never); and after the
final clean shutdown every consumer group's committed offsets equal the end of each
partition, with every message applied.

Bounded: every wait has a deadline; the run fails rather than hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI, Request

from escalator.shared.bus import ensure_topics
from escalator.shared.events import ALL_TOPICS, DLQ
from escalator.shared.settings import DEV_API_KEY, ServiceSettings
from scripts.devstack import ROOT, SERVICES, Broker, ServiceProcess, Stack, free_port

PG_URL = os.environ.get("ESCALATOR_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SHORT_SLA_SECONDS = 20


@dataclass(frozen=True)
class Plan:
    events: int = int(os.environ.get("CHAOS_EVENTS", 20_000))
    seconds: float = float(os.environ.get("CHAOS_SECONDS", 420))
    freeze_seconds: float = float(os.environ.get("CHAOS_FREEZE_SECONDS", 30))
    pause_seconds: float = float(os.environ.get("CHAOS_PAUSE_SECONDS", 300))
    restart_postgres: bool = os.environ.get("CHAOS_RESTART_POSTGRES", "1") == "1"
    short_sla_every: int = 10  # every 10th ticket gets a 20 s first-response target
    resolve_every: int = 7


@dataclass
class Books:
    """What the load generator was told, to check the system against afterwards."""

    accepted: dict[str, str] = field(default_factory=dict)  # external id -> ticket id
    acknowledged: set[str] = field(default_factory=set)
    acknowledged_in_time: set[str] = field(default_factory=set)
    short_sla: set[str] = field(default_factory=set)
    resolved: dict[str, float] = field(default_factory=dict)  # ticket id -> when
    injected: Counter[str] = field(default_factory=Counter)  # topic -> unparseable count
    faults: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    #: After each kill -9: the service, its group's committed offsets, its inbox.
    kills: list[tuple[str, dict[tuple[str, int], int], set[str]]] = field(default_factory=list)


@dataclass(frozen=True)
class Received:
    delivery: str  # webhook-id when signed; the body's delivery id is the same value
    event_id: str
    ticket: str
    event_type: str
    event_time: str
    at: float  # when the sink received it (time.time())


class Sink:
    """The webhook receiver: records every delivery, duplicates included."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[Received] = []
        app = FastAPI()

        @app.post("/hooks")
        async def hook(request: Request) -> dict[str, str]:
            body = await request.json()
            event = body.get("event", {})
            self.received.append(Received(
                request.headers.get("webhook-id") or body.get("delivery_id", ""),
                event.get("id", ""), event.get("subject", ""), event.get("type", ""),
                event.get("time", ""), time.time()))
            return {"ok": "yes"}

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_config=None, lifespan="off"))
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]


def write_config(path: Path) -> Path:
    config = yaml.safe_load((ROOT / "config" / "escalator.yaml").read_text())
    for policy in config["sla"]["policies"]:
        if policy["id"] == "demo":
            policy["first_response"] = f"PT{SHORT_SLA_SECONDS}S"
    for agent in config["router"]["agents"]:
        agent["max_open_tickets"] = 1_000_000  # the run measures faults, not capacity
    path.write_text(yaml.safe_dump(config))
    return path


class Chaos:
    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.prefix = f"chaos{uuid.uuid4().hex[:8]}."
        self.broker = Broker(free_port(), workdir / "broker.log")
        self.sink = Sink(free_port())
        self.log = (workdir / "services.log").open("w")
        schema_base = self.prefix.strip(".")
        self.stack = Stack(
            base_env={
                "ESCALATOR_ENV": "test", "ESCALATOR_DATABASE_URL": PG_URL,
                "ESCALATOR_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
                "ESCALATOR_TOPIC_PREFIX": self.prefix, "ESCALATOR_API_KEY": DEV_API_KEY,
                "ESCALATOR_CONFIG_FILE": str(write_config(workdir / "escalator.yaml")),
                "ESCALATOR_LOG_FORMAT": "json", "ESCALATOR_CONSUMER_SESSION_TIMEOUT_MS": "6000",
                "ESCALATOR_OUTBOX_POLL_SECONDS": "0.2",
            },
            per_service={
                name: {
                    "ESCALATOR_DB_SCHEMA": f"chaos_{schema_base}_{name.replace('-', '_')}",
                    "ESCALATOR_CONSUMER_GROUP": f"{self.prefix}{name}",
                    **({"ESCALATOR_WEBHOOK_URL": f"http://127.0.0.1:{self.sink.port}/hooks"}
                       if name == "notifier" else {}),
                }
                for name in SERVICES
            },
            ports={name: free_port() for name in SERVICES},
            log=self.log,
        )
        self.books = Books()
        self._records: dict[str, list[Any]] = {}
        self.api = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.stack.ports['ingest']}", timeout=10,
            headers={"Authorization": f"Bearer {DEV_API_KEY}"},
            limits=httpx.Limits(max_connections=16),
        )

    # -- the run --------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        self.broker.start()
        sink_task = asyncio.create_task(self.sink.server.serve())
        try:
            await ensure_topics(ServiceSettings(kafka_bootstrap_servers=self.broker.bootstrap,
                                                topic_prefix=self.prefix, topic_partitions=3))
            await asyncio.to_thread(self.stack.start)
            await asyncio.to_thread(self.stack.wait_ready, 120)
            started = time.monotonic()
            load = asyncio.create_task(self._load())
            faults = asyncio.create_task(self._faults(started))
            await asyncio.gather(load, faults)
            await self._settle()
            await asyncio.to_thread(self.stack.stop)  # the clean shutdown the offsets check
            return await self._verdict()
        finally:
            await asyncio.to_thread(self.stack.stop)
            await self.api.aclose()
            self.sink.server.should_exit = True
            await sink_task
            self.broker.stop()
            self.log.close()
            await self._drop_schemas()

    async def _drop_schemas(self) -> None:
        """Leave the shared cluster as we found it (the verdict is already taken)."""
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(PG_URL)
        try:
            async with engine.begin() as conn:
                for name in SERVICES:
                    schema = self.stack.per_service[name]["ESCALATOR_DB_SCHEMA"]
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            await engine.dispose()

    async def _load(self) -> None:
        interval = self.plan.seconds / self.plan.events
        start = time.monotonic()
        sem = asyncio.Semaphore(32)
        tasks: list[asyncio.Task[None]] = []
        for i in range(self.plan.events):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()
            task = asyncio.create_task(self._one(i))
            task.add_done_callback(lambda _: sem.release())
            tasks.append(task)
        await asyncio.gather(*tasks)

    async def _one(self, i: int) -> None:
        external = f"chaos-{i}"
        short = i % self.plan.short_sla_every == 0
        body = {"external_id": external, "subject": f"Chaos ticket {i}",
                "description": "Generated by make chaos.", "severity": "medium",
                "category": "demo" if short else "general",
                "customer": {"email": f"c{i % 500}@chaos.example", "name": f"Customer {i % 500}"}}
        answer = await self._send("POST", "/v1/channels/api/events", body)
        if answer is None:
            return
        created_at = time.monotonic()
        ticket = answer["ticket_id"]
        self.books.accepted[external] = ticket
        if short:
            self.books.short_sla.add(ticket)
            if i % (2 * self.plan.short_sla_every) == 0:
                if await self._send("POST", f"/v1/tickets/{ticket}/acknowledge") is not None:
                    # Only a clear margin makes "must not breach" a fair expectation.
                    self.books.acknowledged.add(ticket)
                    if time.monotonic() - created_at < SHORT_SLA_SECONDS / 2:
                        self.books.acknowledged_in_time.add(ticket)
        elif i % self.plan.resolve_every == 0:
            if await self._send("POST", f"/v1/tickets/{ticket}/resolve") is not None:
                self.books.resolved[ticket] = time.time()

    async def _send(self, method: str, path: str, body: Any = None) -> Any:
        """Retry until answered: a help-desk frontend resends the same external id."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = await self.api.request(method, path, json=body)
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            if response.status_code < 300:
                return response.json()
            self.books.refused[response.status_code] += 1
            if response.status_code < 500 and response.status_code != 409:
                return None
            await asyncio.sleep(0.5)
        raise RuntimeError(f"{method} {path} never succeeded in 120 s")

    async def _faults(self, started: float) -> None:
        schedule: list[tuple[float, str]] = [
            (0.08, "kill ingest"), (0.14, "kill router"), (0.20, "kill sla-timer"),
            (0.26, "kill notifier"), (0.32, "kill postmortem"), (0.38, "freeze broker"),
            (0.50, "restart postgres"), (0.56, "rebalance router"), (0.62, "inject poison"),
            (0.66, "pause consumers"),
        ]
        for at, fault in schedule:
            await asyncio.sleep(max(started + at * self.plan.seconds - time.monotonic(), 0))
            if fault == "restart postgres" and not self.plan.restart_postgres:
                continue
            self.books.faults.append(f"{time.monotonic() - started:7.1f}s {fault}")
            print(f"  chaos: {self.books.faults[-1]}", flush=True)
            await self._apply(fault)

    async def _apply(self, fault: str) -> None:
        verb, _, target = fault.partition(" ")
        if verb == "kill":
            process = self.stack.processes[target]
            process.kill()
            await asyncio.to_thread(process.wait, 10)
            if _topics(target):  # what it had committed and what it had done, when it died
                self.books.kills.append(
                    (target, await self._committed(target), await self._inbox(target)))
            await asyncio.sleep(2)
            process.start()
        elif fault == "freeze broker":
            self.broker.signal(signal.SIGSTOP)
            await asyncio.sleep(self.plan.freeze_seconds)
            self.broker.signal(signal.SIGCONT)
        elif fault == "restart postgres":
            cluster = sorted(os.listdir("/etc/postgresql"))[-1]
            await asyncio.to_thread(subprocess.run, [
                "pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"],
                check=True)
        elif fault == "rebalance router":
            base = self.stack.processes["router"]
            replica = ServiceProcess("router", free_port(),
                                     {**base.env, "ESCALATOR_PORT": "0"}, self.log)
            replica.env["ESCALATOR_PORT"] = str(replica.port)
            replica.start()
            await asyncio.sleep(15)
            replica.terminate()
            await asyncio.to_thread(replica.wait, 40)
        elif fault == "inject poison":
            await self._inject()
        elif fault == "pause consumers":
            paused = [self.stack.processes[name] for name in ("sla-timer", "notifier")]
            for process in paused:
                process.terminate()
            for process in paused:
                await asyncio.to_thread(process.wait, 40)
            await asyncio.sleep(self.plan.pause_seconds)
            for process in paused:
                process.start()

    async def _inject(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap)
        await producer.start()
        try:
            for topic in ALL_TOPICS:
                if topic == DLQ:
                    continue
                unknown = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/chaos",
                           "type": "chaos.unknown_type", "subject": "chaos", "data": {},
                           "time": "2026-01-01T00:00:00Z"}
                await producer.send_and_wait(f"{self.prefix}{topic}", b"\xffnot an event",
                                             key=b"chaos")
                await producer.send_and_wait(f"{self.prefix}{topic}",
                                             json.dumps(unknown).encode(), key=b"chaos")
                self.books.injected[topic] += 1
        finally:
            await producer.stop()

    async def _settle(self, timeout: float = 600) -> None:
        """Wait until every accepted ticket is assigned and the system is quiet: no lag,
        and no partition grew between two looks a few seconds apart.

        Lag alone is not enough: a producer still working off its own backlog (the
        notifier's dispatcher sending, then announcing each delivery) appends after a
        moment of zero lag, and a consumer stopped just then is charged with messages it
        never had the chance to read; that is not the clean-shutdown invariant."""
        await asyncio.to_thread(self.stack.wait_ready, 120)
        # The last tickets' short clocks fall due after the load ends: give them time.
        await asyncio.sleep(SHORT_SLA_SECONDS + 5)
        deadline, seen = time.monotonic() + timeout, -1
        while time.monotonic() < deadline:
            lag, ends = await self._offsets()
            if lag == 0 and ends == seen:
                return
            seen = ends if lag == 0 else -1
            await asyncio.sleep(3)
        raise RuntimeError(f"consumers did not catch up in {timeout}s (lag {await self._lag()})")

    # -- the books --------------------------------------------------------------------

    async def _committed(self, service: str) -> dict[tuple[str, int], int]:
        """The committed offset of each partition ``service``'s group reads (0: none)."""
        topics = [f"{self.prefix}{t}" for t in _topics(service)]
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap,
                                    group_id=f"{self.prefix}{service}", enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()
            partitions = [TopicPartition(t, p) for t in topics
                          for p in consumer.partitions_for_topic(t) or set()]
            return {(tp.topic, tp.partition): await consumer.committed(tp) or 0
                    for tp in partitions}
        finally:
            await consumer.stop()

    async def _inbox(self, service: str) -> set[str]:
        """Every event id ``service`` has recorded as applied."""
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        schema = self.stack.per_service[service]["ESCALATOR_DB_SCHEMA"]
        engine = create_async_engine(PG_URL)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(text(f'SELECT event_id FROM "{schema}".inbox'))
                return {row[0] for row in rows}
        finally:
            await engine.dispose()

    async def _not_applied(self, committed: dict[tuple[str, int], int],
                           applied: set[str]) -> list[str]:
        """Messages below a committed offset that the inbox does not hold: a commit ahead
        of the work, which would lose them. Unknown event types are skipped by design."""
        from escalator.shared.events import EVENT_TYPES

        missing = []
        for topic in {t for t, _ in committed}:
            for record in await self._read(topic.removeprefix(self.prefix)):
                if record.offset >= committed.get((record.topic, record.partition), 0):
                    continue
                try:
                    event = json.loads(record.value)
                    known = isinstance(event, dict) and event.get("type") in EVENT_TYPES
                    event_id = event["id"] if known else None
                except (ValueError, UnicodeDecodeError):
                    known, event_id = True, f"raw:{record.topic}:{record.partition}:{record.offset}"
                if known and event_id not in applied:
                    missing.append(f"{record.topic}[{record.partition}]@{record.offset}")
        return missing

    async def _lag(self) -> int:
        return (await self._offsets())[0]

    async def _offsets(self) -> tuple[int, int]:
        """Messages not yet committed by each consumer group over its topics' partitions,
        and the sum of those partitions' end offsets (it grows while anything produces).

        Read with a manually assigned consumer per group: it fetches the group's
        committed offsets without joining (and so without disturbing) the group.
        """
        lag = ends_total = 0
        for name in (n for n in SERVICES if _topics(n)):
            topics = [f"{self.prefix}{t}" for t in _topics(name)]
            consumer = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap,
                                        group_id=f"{self.prefix}{name}",
                                        enable_auto_commit=False)
            await consumer.start()
            try:
                await consumer.topics()
                partitions = [TopicPartition(t, p) for t in topics
                              for p in consumer.partitions_for_topic(t) or set()]
                consumer.assign(partitions)
                ends = await consumer.end_offsets(partitions)
                for tp in partitions:
                    lag += max(ends[tp] - (await consumer.committed(tp) or 0), 0)
                    ends_total += ends[tp]
            finally:
                await consumer.stop()
        return lag, ends_total

    async def _read(self, topic: str) -> list[Any]:
        """Every record of ``topic``, read once (the verdict runs after the load)."""
        if topic not in self._records:
            self._records[topic] = await self._read_all(topic)
        return self._records[topic]

    async def _read_all(self, topic: str) -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            name = f"{self.prefix}{topic}"
            partitions = [TopicPartition(name, p)
                          for p in consumer.partitions_for_topic(name) or set()]
            if not partitions:
                await consumer.topics()
                partitions = [TopicPartition(name, p)
                              for p in consumer.partitions_for_topic(name) or set()]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            await consumer.seek_to_beginning(*partitions)
            records: list[Any] = []
            deadline = time.monotonic() + 120
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not read {name} to its end")
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
            return records
        finally:
            await consumer.stop()

    async def _events(self, topic: str) -> dict[str, dict[str, Any]]:
        """Distinct events on ``topic`` by id (an outbox resend repeats an id)."""
        events: dict[str, dict[str, Any]] = {}
        for record in await self._read(topic):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                event = json.loads(record.value)
                if isinstance(event, dict) and "id" in event:
                    events.setdefault(event["id"], event)
        return events

    async def _verdict(self) -> dict[str, Any]:
        books = self.books
        failures: list[str] = []
        tickets = await self._events("tickets")
        created = defaultdict(set)
        for event in tickets.values():
            if event["type"] == "ticket.created":
                created[event["data"]["external_id"]].add(event["subject"])
        for external, ticket in books.accepted.items():
            if created.get(external) != {ticket}:
                failures.append(f"{external}: accepted as {ticket}, "
                                f"created {created.get(external)}")
        extra = set(created) - set(books.accepted)
        if extra:
            failures.append(f"{len(extra)} tickets created for requests never accepted")

        assignments = await self._events("assignments")
        first = Counter(e["subject"] for e in assignments.values()
                        if e["type"] == "ticket.assigned" and e["data"].get("previous_assignee")
                        is None and e["data"]["level"] == 0)
        unassigned = [t for t in books.accepted.values() if first[t] == 0]
        twice = [t for t, n in first.items() if n > 1]
        if unassigned:
            failures.append(f"{len(unassigned)} tickets never assigned, e.g. {unassigned[:3]}")
        if twice:
            failures.append(f"{len(twice)} tickets assigned at level 0 more than once")
        moves = Counter((e["subject"], e["data"]["trigger"], e["data"]["from_level"])
                        for e in assignments.values() if e["type"] == "ticket.escalated")
        double = [key for key, n in moves.items() if n > 1]
        if double:
            failures.append(f"{len(double)} escalations repeated for one trigger: {double[:3]}")

        outcomes = await self._events("sla")
        breaches = Counter((e["subject"], e["data"]["clock"]) for e in outcomes.values()
                           if e["type"] == "sla.breached")
        repeated = [key for key, n in breaches.items() if n > 1]
        answered_breached = [t for t in books.acknowledged_in_time
                             if breaches[(t, "first_response")]]
        expected = books.short_sla - books.acknowledged
        not_fired = [t for t in expected if breaches[(t, "first_response")] == 0]
        if repeated:
            failures.append(f"{len(repeated)} clocks breached more than once")
        if answered_breached:
            failures.append(f"{len(answered_breached)} tickets answered in time breached anyway")
        if not_fired:
            failures.append(f"{len(not_fired)} due first-response clocks never fired")

        by_event: dict[str, set[str]] = defaultdict(set)
        for received in self.sink.received:
            by_event[received.event_id].add(received.delivery)
        sent_twice = [e for e, ids in by_event.items() if len(ids) > 1]
        if sent_twice:
            failures.append(f"{len(sent_twice)} events notified twice under different ids")
        resends = len(self.sink.received) - len({r.delivery for r in self.sink.received})
        stale = _told_after_resolution(tickets.values(), self.sink.received)
        if stale:
            failures.append(f"{len(stale)} messages about work on a ticket resolved "
                            f"{STALE_AFTER_SECONDS:.0f}+ s earlier, e.g. {stale[:3]}")

        # The relay may resend a letter (at-least-once): count each (group, origin) once.
        letters = list({
            (letter["consumer_group"], letter["origin"]["topic"], letter["origin"]["partition"],
             letter["origin"]["offset"]): letter
            for letter in (json.loads(r.value) for r in await self._read(DLQ))
        }.values())
        origins = Counter(letter["origin"]["topic"].removeprefix(self.prefix)
                          for letter in letters)
        wrong = [letter for letter in letters if letter["reason"] != "unparseable"]
        if wrong:
            failures.append(f"{len(wrong)} dead letters were not injected poison: "
                            f"{[w['error'][:120] for w in wrong[:3]]}")
        readers = {topic: sum(1 for name in SERVICES if topic in _topics(name))
                   for topic in books.injected}
        expected_letters = {t: n * readers[t] for t, n in books.injected.items() if readers[t]}
        if dict(origins) != expected_letters:
            failures.append(f"dead letters by topic {dict(origins)}, expected {expected_letters}")

        lag = await self._lag()
        if lag:
            failures.append(f"after a clean shutdown {lag} messages are uncommitted")
        # Kafka's own client tests' invariants: after a hard kill the committed position
        # is at most what was applied (redelivery allowed, loss never); after the clean
        # shutdown it is exactly what was applied. Redelivery having no second effect is
        # what the duplicate checks above show.
        for service, committed, applied in books.kills:
            ahead = await self._not_applied(committed, applied)
            if ahead:
                failures.append(f"{service} killed with {len(ahead)} messages committed "
                                f"but not applied, e.g. {ahead[:3]}")
        for service in (n for n in SERVICES if _topics(n)):
            ahead = await self._not_applied(await self._committed(service),
                                            await self._inbox(service))
            if ahead:
                failures.append(f"{service} stopped with {len(ahead)} messages committed "
                                f"but not applied, e.g. {ahead[:3]}")
        return {
            "accepted": len(books.accepted), "refused": dict(books.refused),
            "short_sla_tickets": len(books.short_sla),
            "answered_in_time": len(books.acknowledged_in_time),
            "first_response_breaches": sum(n for (_, c), n in breaches.items()
                                           if c == "first_response"),
            "escalations": len(moves), "webhooks_received": len(self.sink.received),
            "webhook_resends_same_id": resends, "dead_letters": len(letters),
            "kills_checked": len(books.kills),
            "faults": books.faults, "failures": failures,
        }


#: A message about work on a ticket may still go out this long after the ticket was
#: resolved: the notifier's read lag allowance (5 s) plus a fetch and a send. Beyond it,
#: the notifier would have spoken from a backlog it had not read.
STALE_AFTER_SECONDS = 8.0


def _told_after_resolution(ticket_events: Any, received: list[Received]) -> list[str]:
    """Deliveries about something that happened before a ticket was resolved, received
    well after the resolution (and while it still stood)."""
    from datetime import datetime

    resolved: dict[str, float] = {}
    for event in ticket_events:
        at = datetime.fromisoformat(event["time"]).timestamp()
        if event["type"] in ("ticket.resolved", "ticket.closed"):
            resolved.setdefault(event["subject"], at)
        elif event["type"] == "ticket.reopened":
            resolved.pop(event["subject"], None)
    stale = []
    for r in received:
        if r.ticket not in resolved or not r.event_time:
            continue
        happened = datetime.fromisoformat(r.event_time).timestamp()
        if happened < resolved[r.ticket] and r.at > resolved[r.ticket] + STALE_AFTER_SECONDS:
            stale.append(f"{r.event_type} about {r.ticket}")
    return stale


def _topics(service: str) -> list[str]:
    """The logical topics ``service``'s consumer subscribes to (its handlers decide)."""
    import importlib

    module = importlib.import_module(f"escalator.{service.replace('-', '_')}.main")
    handlers = module.SPEC.handlers
    return [] if handlers is None else handlers.topics()


async def main() -> int:
    plan = Plan()
    workdir = ROOT / "var" / "chaos"
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"chaos: {plan.events} events over {plan.seconds:.0f}s; logs in {workdir}", flush=True)
    verdict = await Chaos(plan, workdir).run()
    print(json.dumps(verdict, indent=2))
    (workdir / "verdict.json").write_text(json.dumps(verdict, indent=2))
    return 1 if verdict["failures"] else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
