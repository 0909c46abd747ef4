"""Notifier: webhook deliveries per second from one dispatcher to a local sink.

N pending deliveries are planned through the real planner into PostgreSQL (one schema
made for the run), then one ``Dispatcher`` (the production class, signing with
Standard Webhooks, the SSRF guard on) sends them to a sink in its own process, which
counts every POST to ``/hook`` by its ``webhook-id``. Figures: deliveries/s from the
first claim to the last recorded outcome, and duplicates the sink saw (the target is
zero). First, the same HTTP client posts to the sink's ``/ceiling`` with no database
work, so the run shows how far the sink and client are from being the limit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select, text

from bench.common import PG_URL, ROOT, Report
from escalator.notifier import planner
from escalator.notifier.config import WebhookConfig
from escalator.notifier.dispatcher import Dispatcher
from escalator.notifier.http import Client
from escalator.notifier.main import SPEC
from escalator.notifier.models import Delivery
from escalator.notifier.service import upsert_targets
from escalator.notifier.settings import NotifierSettings
from escalator.shared.db import make_engine, make_sessionmaker
from escalator.shared.events import CloudEvent, Holder, TicketAssigned
from escalator.shared.migrations import upgrade
from scripts.devstack import free_port

SECTION = "notifier"
COUNT = int(os.environ.get("ESCALATOR_BENCH_NOTIFIER_COUNT", "5000"))
CONCURRENCY = int(os.environ.get("ESCALATOR_BENCH_NOTIFIER_CONCURRENCY", "50"))
TARGET_RATE = 1000.0


def _sink(port: int) -> None:
    """A bare ASGI app under uvicorn (httptools, uvloop): 200 to every POST, counting
    those to ``/hook`` by ``webhook-id``; ``GET /stats`` reports them."""
    import uvicorn

    seen: dict[str, int] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        body = b"ok"
        if scope["method"] == "GET":
            body = json.dumps({"requests": sum(seen.values()), "distinct": len(seen),
                               "duplicates": sum(v - 1 for v in seen.values())}).encode()
        elif scope["path"] == "/hook":
            key = dict(scope["headers"]).get(b"webhook-id", b"").decode()
            seen[key] = seen.get(key, 0) + 1
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                http="httptools", loop="uvloop", lifespan="off", backlog=2048)


def _event(index: int) -> CloudEvent[TicketAssigned]:
    holder = Holder(agent_id="a", name="Agent", email="a@x.example", team="l1")
    return CloudEvent.wrap(TicketAssigned(
        ticket_id=str(uuid.uuid4()), severity="high", path="standard", level=0,
        level_name="L1", assignee=holder, strategy="round_robin", reason=f"bench {index}",
    ), source="/bench")


async def _ceiling(url: str, count: int, concurrency: int) -> float:
    """POSTs/s from the dispatcher's HTTP client alone, with as many in flight."""
    client = Client()
    gate = asyncio.Semaphore(concurrency)

    async def post() -> None:
        async with gate:
            await client.post(url, b'{"ceiling": true}', {"Content-Type": "application/json"})

    started = time.perf_counter()
    try:
        await asyncio.gather(*(post() for _ in range(count)))
    finally:
        client.close()
    return count / (time.perf_counter() - started)


async def run(report: Report) -> None:
    port = free_port()
    # Its own process, so the sink does not share the dispatcher's event loop and core.
    sink = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.notifier",
                                                str(port), cwd=ROOT)
    async with httpx.AsyncClient() as client:
        for _ in range(600):  # up to a minute: the sink imports this module
            try:
                await client.get(f"http://127.0.0.1:{port}/stats", timeout=1)
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError("sink did not start")
    ceiling = await _ceiling(f"http://127.0.0.1:{port}/ceiling", COUNT, CONCURRENCY)
    schema = f"bench_notifier_{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{port}/hook"
    settings = NotifierSettings(
        database_url=PG_URL, db_schema=schema, webhook_url=url,
        webhook_private_allowed=["127.0.0.1"], delivery_batch_size=500,
        # One destination, so it may use every send slot.
        delivery_concurrency=CONCURRENCY, delivery_per_destination=CONCURRENCY,
        dispatcher_idle_seconds=0.05,
        # A throughput run, not a failure drill: a sink slowed by a busy machine must not
        # trip the breaker or the retry path.
        webhook_timeout_seconds=30, delivery_lease_seconds=120, breaker_failures=100_000,
        webhook_signing_secrets=["whsec_" + base64.b64encode(b"bench-secret").decode()],
    )
    engine = make_engine(settings)
    try:
        await upgrade(engine, settings, SPEC.migrations)
        sessions = make_sessionmaker(engine)
        async with sessions() as session, session.begin():
            await upsert_targets(session, [WebhookConfig(id="default", url=url,
                                                         events=["ticket.assigned"])])
        events = [_event(i) for i in range(COUNT)]
        planned_at, planning_cpu = time.perf_counter(), time.process_time()
        for start in range(0, COUNT, 500):  # as the consumer applies a poll: one run
            async with sessions() as session, session.begin():
                await planner.plan_deliveries(session, events[start:start + 500])
        planning = (time.perf_counter() - planned_at, time.process_time() - planning_cpu)
        dispatcher = Dispatcher(settings, sessions)
        started = time.perf_counter()
        task = asyncio.create_task(dispatcher.run())
        deadline = time.monotonic() + 300
        sent = 0
        while time.monotonic() < deadline:
            async with sessions() as session:
                sent = int(await session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.status == "sent"))
                    or 0)
            if sent >= COUNT:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"http://127.0.0.1:{port}/stats")).json()
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
        sink.terminate()
        await asyncio.wait_for(sink.wait(), 10)
    rate = sent / elapsed if elapsed > 0 else 0.0
    report.add(SECTION, f"planning: events/s (batches of 500, {COUNT} events)",
               COUNT / planning[0], "/s")
    report.add(SECTION, "planning: process CPU per event", planning[1] / COUNT * 1e6, "µs")
    report.add(SECTION, f"HTTP ceiling, no database ({CONCURRENCY} in flight)", ceiling, "/s")
    report.add(SECTION, f"webhook deliveries/s (1 instance, {COUNT} sent)", rate, "/s",
               target=f">= {TARGET_RATE:g}", ok=rate >= TARGET_RATE and sent >= COUNT)
    report.add(SECTION, "duplicates seen by the sink", float(stats["duplicates"]), "",
               target="0", ok=stats["duplicates"] == 0)
    report.add(SECTION, "distinct deliveries received", float(stats["distinct"]), "",
               target=f"{COUNT}", ok=stats["distinct"] == COUNT)


if __name__ == "__main__":
    _sink(int(sys.argv[1]))
