"""Ingest benchmark: single-event POSTs against the framework's ceiling, and the batch form.

One ``escalator-ingest`` process on PostgreSQL and the broker (started the way
``make run`` starts it, by ``scripts.devstack``), and a no-op FastAPI app under uvicorn
in its own process as the ceiling: the same clients, the same JSON body, in the same
run, so the ratio says what ingest's own work costs. Then p99 latency at half the
measured maximum rate (paced, open loop), and the batch endpoint's events per second:
one client posting back to back (the target's figure), then ``BENCH_INGEST_BATCH_CLIENTS``
(default 4) at once, which keeps the ingest process busy while another request waits for
PostgreSQL.

Each phase also prints the CPU its processes used per request or event (Linux
``/proc``): the no-op's and ingest's process, PostgreSQL, the broker and this process
(the clients). They say what a target asks: 0.5 × the ceiling needs ingest's process to
cost at most twice the no-op's per request once both are saturated, and the two cores
bound the batch rate at 2 / (the CPU every process spends per event).

``BENCH_INGEST_SECONDS`` (default 8) sets each phase's length; ``BENCH_INGEST_CLIENTS``
(default 32) the concurrent clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from fastapi import FastAPI

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
from scripts.devstack import Broker, Stack, free_port

SECTION = "ingest"
API_KEY = "bench-admin-key"
SECONDS = float(os.environ.get("BENCH_INGEST_SECONDS", "8"))
CLIENTS = int(os.environ.get("BENCH_INGEST_CLIENTS", "32"))
BATCH_CLIENTS = int(os.environ.get("BENCH_INGEST_BATCH_CLIENTS", "4"))

noop_app = FastAPI()


@noop_app.post("/v1/channels/api/events", status_code=202)
async def noop(body: dict[str, Any]) -> dict[str, Any]:
    """The ceiling: parse the same JSON, answer the same shape, do nothing else."""
    return {"ticket_id": "00000000-0000-0000-0000-000000000000", "created": True}


def event(n: int, run: str) -> dict[str, Any]:
    return {"external_id": f"bench-{run}-{n}", "subject": "Checkout fails with error 502",
            "description": "Since 09:10 UTC every card payment fails at checkout.",
            "severity": "high", "category": "payments",
            "customer": {"email": f"ops{n % 50}@acme.example", "name": "Acme Ops"}}


async def closed_loop(url: str, seconds: float, clients: int,
                      body: Callable[[int], dict[str, Any]]) -> tuple[float, list[float], int]:
    """``clients`` workers posting back to back: (requests/s, latencies, errors)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds
    host, port = url.removeprefix("http://").split(":")

    async def worker() -> None:
        nonlocal errors
        async with RawHttpClient(host, int(port), {"Authorization": f"Bearer {API_KEY}"}) as c:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, _ = await c.post_json("/v1/channels/api/events", body(next(counter)))
                if status == 202:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, latencies, errors


async def paced(url: str, rate: float, seconds: float,
                body: Callable[[int], dict[str, Any]]) -> list[float]:
    """Open loop at ``rate`` requests/s: latency as a client at that load sees it.

    Raw keep-alive sockets, because at a few hundred requests a second httpx itself
    queues requests and the figure would measure the client.
    """
    latencies: list[float] = []

    async def send(client: RawHttpClient, n: int, due: float) -> None:
        status, _ = await client.post_json("/v1/channels/api/events", body(n))
        if status == 202:
            latencies.append(time.time() - due)

    await open_loop(url, rate, seconds, {"Authorization": f"Bearer {API_KEY}"}, send)
    return latencies


async def drain_outbox(schema: str, timeout: float = 300) -> float:
    """Wait until the relay has published everything; returns the seconds it took.

    The max-rate phase leaves a backlog the relay publishes afterwards, in the same
    process; measuring the half-rate phase on top of it would measure the drain.
    """
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_URL)
    began = time.perf_counter()
    try:
        while time.perf_counter() - began < timeout:
            async with engine.connect() as conn:
                unsent = await conn.scalar(text(
                    f'SELECT count(*) FROM "{schema}".outbox WHERE sent_at IS NULL'))
            if not unsent:
                break
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()
    return time.perf_counter() - began


async def batch_rate(url: str, seconds: float, run: str) -> float:
    sent = 0
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        began = time.perf_counter()
        batch = 0
        while time.perf_counter() - began < seconds or batch == 0:
            events = [event(batch * 1000 + i, f"batch-{run}") for i in range(1000)]
            response = await client.post("/v1/channels/api/events:batch",
                                         json={"events": events})
            response.raise_for_status()
            sent += response.json()["accepted"]
            batch += 1
        return sent / (time.perf_counter() - began)


class _Cpu:
    """CPU seconds each process used during a phase: ``with meter.phase() as used:``, then
    ``used`` maps a name to seconds."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def _now(self) -> dict[str, float]:
        return {**{name: process_cpu(pid) for name, pid in self.pids.items()},
                "PostgreSQL": postgres_cpu(), "clients (this process)": process_cpu(os.getpid())}

    @contextlib.contextmanager
    def phase(self) -> Iterator[dict[str, float]]:
        used: dict[str, float] = {}
        before = self._now()
        yield used
        used.update({name: spent - before[name] for name, spent in self._now().items()})


def _report_cpu(report: Report, phase: str, used: dict[str, float], count: float,
                unit: str) -> float:
    """Print each process's CPU per ``unit``; the sum, in seconds per unit."""
    for name, spent in used.items():
        report.add(SECTION, f"{phase}: CPU per {unit}, {name}", spent / max(count, 1) * 1e6,
                   "µs")
    return sum(used.values()) / max(count, 1)


async def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            try:
                if (await client.get(f"{url}/openapi.json")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not start")
            await asyncio.sleep(0.1)


async def _drop_schema(schema: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


async def run(report: Report) -> None:

    run_id = uuid.uuid4().hex[:8]
    schema = f"bench_ingest_{run_id}"
    log_dir = ROOT / "bench-results"
    broker = Broker(free_port(), log_dir / "ingest-broker.log")
    broker.start()
    port, noop_port = free_port(), free_port()
    stack = Stack(base_env={
        "ESCALATOR_ENV": "test", "ESCALATOR_DATABASE_URL": PG_URL, "ESCALATOR_DB_SCHEMA": schema,
        "ESCALATOR_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "ESCALATOR_TOPIC_PREFIX": f"bench{run_id}.", "ESCALATOR_API_KEY": API_KEY,
        "ESCALATOR_LOG_LEVEL": "WARNING", "ESCALATOR_CONSUMER_GROUP": f"bench-{run_id}",
    }, ports={"ingest": port})
    noop = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "bench.ingest:noop_app", "--port", str(noop_port),
        "--log-level", "warning", "--no-access-log", cwd=ROOT)
    statistics = contextlib.AsyncExitStack()
    try:
        stand_in = await statistics.enter_async_context(autovacuum_stand_in([schema]))
        stack.start(["ingest"])
        await asyncio.to_thread(stack.wait_ready, 90)
        await _wait_http(f"http://127.0.0.1:{noop_port}")
        url, noop_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{noop_port}"

        assert broker.process is not None and stack.processes["ingest"].process is not None
        ingest_pid, broker_pid = stack.processes["ingest"].process.pid, broker.process.pid
        with _Cpu({"no-op process": noop.pid}).phase() as used:
            ceiling, _, _ = await closed_loop(noop_url, SECONDS, CLIENTS,
                                              lambda n: event(n, "noop"))
        report.add(SECTION, f"no-op FastAPI ceiling ({CLIENTS} clients)", ceiling, "req/s")
        noop_cpu = used["no-op process"] / max(ceiling * SECONDS, 1)
        report.add(SECTION, "no-op: CPU per request, its process", noop_cpu * 1e6, "µs")
        meter = _Cpu({"ingest process": ingest_pid, "broker": broker_pid})
        with meter.phase() as used:
            rate, latencies, errors = await closed_loop(url, SECONDS, CLIENTS,
                                                        lambda n: event(n, run_id))
        report.add(SECTION, f"single-event POST ({CLIENTS} clients)", rate, "req/s",
                   target=">= 0.5 x ceiling", ok=rate >= 0.5 * ceiling and errors == 0)
        report.add(SECTION, "single-event ratio to ceiling", rate / ceiling, "x")
        report.add(SECTION, "single-event p50 at max rate", percentile(latencies, 50) * 1e3, "ms")
        report.add(SECTION, "single-event p99 at max rate", percentile(latencies, 99) * 1e3, "ms")
        _report_cpu(report, "single-event", used, rate * SECONDS, "request")
        report.add(SECTION, "single-event: ingest CPU per request / no-op's (0.5 × needs ≤ 2)",
                   used["ingest process"] / max(rate * SECONDS, 1) / max(noop_cpu, 1e-9), "x")
        drained = await drain_outbox(schema)
        report.add(SECTION, "relay drain after the max-rate phase", drained, "s")
        half = await paced(url, rate / 2, SECONDS, lambda n: event(n, f"half-{run_id}"))
        p99 = percentile(half, 99) * 1e3
        report.add(SECTION, f"p99 at half max rate ({rate / 2:.0f} req/s)", p99, "ms",
                   target="<= 50 ms", ok=p99 <= 50)
        per_second = await batch_rate(url, SECONDS, run_id)
        report.add(SECTION, "batch endpoint (1,000 per request)", per_second, "events/s",
                   target=">= 20,000", ok=per_second >= 20_000)
        with meter.phase() as used:
            rates = await asyncio.gather(*(batch_rate(url, SECONDS, f"{run_id}-{n}")
                                           for n in range(BATCH_CLIENTS)))
        report.add(SECTION, f"batch endpoint, {BATCH_CLIENTS} clients at once", sum(rates),
                   "events/s")
        per_event = _report_cpu(report, f"batch, {BATCH_CLIENTS} clients", used,
                                sum(rates) * SECONDS, "event")
        report.add(SECTION, "batch: bound of the ingest process (one core)",
                   SECONDS * sum(rates) / max(used["ingest process"], 1e-9), "events/s")
        report.add(SECTION, f"batch: bound of {os.cpu_count()} cores at this CPU per event",
                   (os.cpu_count() or 1) / max(per_event, 1e-9), "events/s")
        stand_in.report(report, SECTION)
    finally:
        try:
            await statistics.aclose()
        finally:
            noop.terminate()
            await asyncio.wait_for(noop.wait(), 10)
            await asyncio.to_thread(stack.stop)
            broker.stop()
            await _drop_schema(schema)
