"""The six-step escalation path across all five services, each a real process.

Real broker (Tansu), real PostgreSQL (a schema per service), real HTTP between the
test and the services, a real webhook receiver. Nothing in-process stands in for
Kafka: the services only meet through topics.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI, Request

from escalator.shared.bus import ensure_topics
from escalator.shared.settings import ServiceSettings
from scripts.devstack import ROOT, SERVICES, Stack
from tests.support import API_KEY, PG_URL, Broker, free_port, new_prefix, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FIRST_RESPONSE_SECONDS = 3


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.port = free_port()
        app = FastAPI()

        @app.post("/hooks")
        async def hook(request: Request) -> dict[str, str]:
            self.received.append({"headers": dict(request.headers), "body": await request.json()})
            return {"ok": "yes"}

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_config=None, lifespan="off"))
        self.server.capture_signals = __import__("contextlib").nullcontext  # type: ignore[method-assign]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"


def write_config(tmp_path: Path) -> Path:
    config = yaml.safe_load((ROOT / "config" / "escalator.yaml").read_text())
    for policy in config["sla"]["policies"]:
        if policy["id"] == "demo":
            policy["first_response"] = f"PT{FIRST_RESPONSE_SECONDS}S"
    path = tmp_path / "escalator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def system(
    broker: Broker, tmp_path: Path, postgres_available: None
) -> AsyncIterator[tuple[dict[str, httpx.AsyncClient], WebhookReceiver]]:
    prefix = new_prefix()
    schema_base = prefix.strip(".")
    receiver = WebhookReceiver()
    receiver_task = asyncio.create_task(receiver.server.serve())
    await ensure_topics(ServiceSettings(kafka_bootstrap_servers=broker.bootstrap,
                                        topic_prefix=prefix, topic_partitions=3))
    log = (tmp_path / "services.log").open("w")
    stack = Stack(
        base_env={
            "ESCALATOR_ENV": "test",
            "ESCALATOR_DATABASE_URL": PG_URL,
            "ESCALATOR_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "ESCALATOR_TOPIC_PREFIX": prefix,
            "ESCALATOR_API_KEY": API_KEY,
            "ESCALATOR_CONFIG_FILE": str(write_config(tmp_path)),
            "ESCALATOR_LOG_FORMAT": "json",
            "ESCALATOR_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "ESCALATOR_OUTBOX_POLL_SECONDS": "0.2",
        },
        per_service={
            name: {
                "ESCALATOR_DB_SCHEMA": f"t_{schema_base}_{name.replace('-', '_')}",
                "ESCALATOR_CONSUMER_GROUP": f"{prefix}{name}",
                **({"ESCALATOR_WEBHOOK_URL": receiver.url} if name == "notifier" else {}),
            }
            for name in SERVICES
        },
        ports={name: free_port() for name in SERVICES},
        log=log,
    )
    clients = {
        name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10,
                                headers={"Authorization": f"Bearer {API_KEY}"})
        for name, port in stack.ports.items()
    }
    try:
        await asyncio.to_thread(stack.start)
        await asyncio.to_thread(stack.wait_ready, 90)
        yield clients, receiver
    finally:
        await asyncio.to_thread(stack.stop)
        for client in clients.values():
            await client.aclose()
        receiver.server.should_exit = True
        await receiver_task
        log.close()
        if sys.exc_info()[0] is not None:
            print((tmp_path / "services.log").read_text()[-20000:])


async def json_when(client: httpx.AsyncClient, path: str, check: Any, **params: Any) -> Any:
    """GET ``path`` until it answers 200 and ``check(body)`` holds; returns the body."""

    async def probe() -> Any:
        response = await client.get(path, params=params)
        if response.status_code == 200 and check(response.json()):
            return response.json()
        return None

    return await wait_until(probe, timeout=45, interval=0.1, message=f"GET {path} never matched")


async def test_ticket_escalates_end_to_end(
    system: tuple[dict[str, httpx.AsyncClient], WebhookReceiver],
) -> None:
    svc, receiver = system
    # 1. A ticket arrives on ingest; the same external id again updates it.
    body = {
        "external_id": "e2e-1", "subject": "Checkout fails", "category": "demo",
        "description": "All card payments fail.", "severity": "high",
        "customer": {"email": "ops@acme.example", "name": "Acme Ops"},
    }
    created = await svc["ingest"].post("/v1/channels/api/events", json=body)
    assert created.status_code == 202 and created.json()["created"] is True
    ticket = created.json()["ticket_id"]
    again = await svc["ingest"].post("/v1/channels/api/events", json=body)
    assert again.json() == {"ticket_id": ticket, "created": False}
    calm_body = {**body, "external_id": "e2e-2", "subject": "Wrong VAT number"}
    calm = (await svc["ingest"].post("/v1/channels/api/events", json=calm_body)).json()
    assert (await svc["ingest"].get(f"/v1/tickets/{ticket}")).json()["status"] == "open"

    # 2. The router assigns level 0 of the default path to an available agent.
    first = await json_when(svc["router"], f"/v1/assignments/{ticket}",
                            lambda b: b["assignee"] is not None)
    assert first["level"] == 0 and first["assignee"]["team"] == "support-l1"

    # 3. The sla-timer runs a first-response clock; acknowledging the other ticket stops it.
    await json_when(svc["sla-timer"], f"/v1/tickets/{calm['ticket_id']}/clocks",
                    lambda b: b["clocks"])
    ack = await svc["ingest"].post(f"/v1/tickets/{calm['ticket_id']}/acknowledge")
    assert ack.status_code == 200
    await json_when(svc["sla-timer"], f"/v1/tickets/{calm['ticket_id']}/clocks",
                    lambda b: b["clocks"][0]["status"] == "met")
    clocks = await json_when(svc["sla-timer"], f"/v1/tickets/{ticket}/clocks",
                             lambda b: b["clocks"][0]["status"] == "breached")
    assert clocks["clocks"][0]["target_seconds"] == FIRST_RESPONSE_SECONDS

    # 4. The breach makes the router escalate to the next level and reassign.
    moved = await json_when(svc["router"], f"/v1/assignments/{ticket}",
                            lambda b: b["level"] == 1)
    assert moved["assignee"]["team"] == "support-l2"
    assert [h["action"] for h in moved["history"]][:2] == ["assigned", "escalated"]

    # The acknowledged ticket never escalated.
    calm_assignment = (await svc["router"].get(f"/v1/assignments/{calm['ticket_id']}")).json()
    assert calm_assignment["level"] == 0

    # 5. The notifier posted every assignment and escalation of the ticket, once each.
    deliveries = await json_when(svc["notifier"], "/v1/deliveries",
                                 lambda b: len(b["items"]) >= 3, ticket_id=ticket, status="sent")
    kinds = sorted(d["about_event_type"] for d in deliveries["items"])
    assert kinds == ["ticket.assigned", "ticket.assigned", "ticket.escalated"]
    posted = [r for r in receiver.received if r["body"]["event"]["subject"] == ticket]
    assert len(posted) == 3
    assert len({r["headers"]["idempotency-key"] for r in posted}) == 3

    # 6. Closing the ticket makes postmortem store a record with the whole timeline.
    assert (await svc["ingest"].post(f"/v1/tickets/{ticket}/close")).status_code == 200
    listing = await json_when(svc["postmortem"], "/v1/postmortems",
                              lambda b: len(b["items"]) == 1, ticket_id=ticket)
    review = await json_when(
        svc["postmortem"], f"/v1/postmortems/{listing['items'][0]['id']}",
        lambda b: {"notification.sent", "sla.breached", "ticket.closed"}
        <= {e["type"] for e in b["timeline"]},
    )
    types = [e["type"] for e in review["timeline"]]
    assert types[0] == "ticket.created" and "ticket.escalated" in types
    assert review["measures"]["levels_reached"] == 2
