"""``make run``: the broker, a webhook inbox and the five services on SQLite, until Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading

import uvicorn
from fastapi import FastAPI, Request

from escalator.shared.bus import ensure_topics
from escalator.shared.settings import DEV_API_KEY, ServiceSettings
from scripts.devstack import ROOT, Broker, Stack, port_is_open

BROKER_PORT = int(os.environ.get("ESCALATOR_DEV_BROKER_PORT", "9092"))
WEBHOOK_PORT = int(os.environ.get("ESCALATOR_DEV_WEBHOOK_PORT", "8099"))


def start_webhook_inbox(port: int) -> None:
    """A local receiver for the notifier's webhooks, so deliveries succeed and can be seen.

    ``GET /hooks`` lists what arrived (the demo prints it); in production the notifier
    posts to your chat or paging tool instead.
    """
    app = FastAPI(title="Escalator dev webhook inbox")
    received: list[dict[str, object]] = []

    @app.post("/hooks")
    async def hook(request: Request) -> dict[str, str]:
        body = await request.json()
        received.append(body)
        print(f"[webhook] {body.get('text', json.dumps(body)[:120])}", flush=True)
        return {"status": "received"}

    @app.get("/hooks")
    async def hooks() -> list[dict[str, object]]:
        return received

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    # Not the main thread, so uvicorn leaves signal handling to the launcher.
    threading.Thread(target=server.run, daemon=True).start()


def main() -> None:
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    busy = [str(p) for p in (BROKER_PORT, WEBHOOK_PORT, 8001, 8002, 8003, 8004, 8005)
            if port_is_open(p)]
    if busy:
        sys.exit(f"ports already in use: {', '.join(busy)} (is Escalator already running?)")

    api_key = os.environ.get("ESCALATOR_API_KEY", DEV_API_KEY)
    broker = Broker(BROKER_PORT, var / "broker.log")
    broker.start()
    base_env = {
        "ESCALATOR_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "ESCALATOR_API_KEY": api_key,
        "ESCALATOR_CONFIG_FILE": os.environ.get(
            "ESCALATOR_CONFIG_FILE", str(ROOT / "config" / "escalator.yaml")),
        "ESCALATOR_LOG_FORMAT": os.environ.get("ESCALATOR_LOG_FORMAT", "text"),
        "ESCALATOR_TOPIC_PARTITIONS": os.environ.get("ESCALATOR_TOPIC_PARTITIONS", "6"),
        # Signs (notifier) and verifies (postmortem) customer survey links.
        "ESCALATOR_SURVEY_SECRET": os.environ.get("ESCALATOR_SURVEY_SECRET", "dev-survey-secret"),
    }
    asyncio.run(ensure_topics(ServiceSettings(
        kafka_bootstrap_servers=broker.bootstrap,
        topic_partitions=int(base_env["ESCALATOR_TOPIC_PARTITIONS"]),
    )))
    start_webhook_inbox(WEBHOOK_PORT)
    stack = Stack(
        base_env=base_env,
        per_service={"notifier": {
            "ESCALATOR_WEBHOOK_URL": os.environ.get(
                "ESCALATOR_WEBHOOK_URL", f"http://127.0.0.1:{WEBHOOK_PORT}/hooks")}},
        log=sys.stdout,
    )
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        stack.start()
        while not stopping.is_set() and not stack.all_ready():
            stack.raise_if_exited()
            stopping.wait(0.2)
        if stopping.is_set():
            return
        print("\nEscalator is up (SQLite files in var/, broker log in var/broker.log):")
        for name, proc in stack.processes.items():
            print(f"  {name:<11} {proc.url}/docs")
        print(f"  broker      {broker.bootstrap}")
        print(f"  webhooks    http://127.0.0.1:{WEBHOOK_PORT}/hooks")
        print(f"API key: {api_key if api_key == DEV_API_KEY else '(from ESCALATOR_API_KEY)'}"
              "   Try: make demo     Stop: Ctrl-C\n", flush=True)
        while not stopping.wait(0.5):
            stack.raise_if_exited()
    finally:
        print("\nstopping...", flush=True)
        stack.stop()
        broker.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    main()
