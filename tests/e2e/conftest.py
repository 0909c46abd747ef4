"""The whole system as real processes: the broker, PostgreSQL, the five services."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from tests.support import API_KEY, PG_URL, Broker, drop_schemas, free_port, new_prefix

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
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]

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


@dataclass
class System:
    clients: dict[str, httpx.AsyncClient]
    receiver: WebhookReceiver
    ports: dict[str, int]


@pytest.fixture
async def system(
    broker: Broker, tmp_path: Path, postgres_available: None
) -> AsyncIterator[System]:
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
        yield System(clients, receiver, dict(stack.ports))
    finally:
        await asyncio.to_thread(stack.stop)
        for client in clients.values():
            await client.aclose()
        receiver.server.should_exit = True
        await receiver_task
        log.close()
        await drop_schemas(prefix)  # as the other fixtures do
        if sys.exc_info()[0] is not None:
            print((tmp_path / "services.log").read_text()[-20000:])


