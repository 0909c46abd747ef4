"""Two replicas share the work; one is SIGKILLed mid-batch and restarted: every event
still yields exactly one delivery, and every POST of it carries the same idempotency key.

Both replicas are real processes, so one can be killed without a goodbye; their logs
go to ``replicas.log`` in the test's directory. PostgreSQL only: that is where replicas
run side by side.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

import httpx
from pydantic import SecretStr

from escalator.notifier.settings import NotifierSettings
from escalator.shared.bus import ensure_topics
from scripts.devstack import ServiceProcess
from tests.notifier.helpers import Receiver, assigned, notifier_settings, publish
from tests.support import API_KEY, Env, free_port, wait_until


def environment(settings: NotifierSettings, port: int) -> dict[str, str]:
    """The settings as the ``ESCALATOR_*`` variables a separate process reads."""
    values: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        raw = getattr(settings, name)
        if value is None:
            continue
        if isinstance(raw, SecretStr):
            value = raw.get_secret_value()
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | dict):
            text = json.dumps(value)
        else:
            text = str(value)
        values[f"ESCALATOR_{name.upper()}"] = text
    values["ESCALATOR_PORT"] = str(port)
    return values


async def test_kill_mid_batch_and_two_replicas_deliver_each_event_once(
    pg_env: Env, receiver: Receiver
) -> None:
    settings = notifier_settings(pg_env, webhook_url=receiver.url(), delivery_lease_seconds=3.0,
                                 webhook_timeout_seconds=1.0, smtp_timeout_seconds=1.0,
                                 delivery_batch_size=10, delivery_max_attempts=10)
    await ensure_topics(settings)
    events = [assigned() for _ in range(24)]
    # Slow answers keep batches in flight, so the kill lands mid-batch.
    receiver.delays = {e.subject: [0.15] for e in events}
    log = (pg_env.tmp_path / "replicas.log").open("w")
    steady_port, doomed_port = free_port(), free_port()
    steady = ServiceProcess("notifier", steady_port,
                            {**os.environ, **environment(settings, steady_port)}, log)
    doomed_env = {**os.environ, **environment(settings, doomed_port)}
    doomed = ServiceProcess("notifier", doomed_port, doomed_env, log)
    again = ServiceProcess("notifier", doomed_port, doomed_env, log)
    client = httpx.AsyncClient(base_url=steady.url, timeout=10,
                               headers={"Authorization": f"Bearer {API_KEY}"})
    try:
        steady.start()
        await wait_until(steady.ready, timeout=40, message="replica B not ready")
        doomed.start()
        await wait_until(doomed.ready, timeout=40, message="replica A not ready")
        for event in events:
            await publish(pg_env, event)
        await wait_until(lambda: len(receiver.requests) >= 5, timeout=30,
                         message="no deliveries started")
        doomed.kill()  # SIGKILL: no goodbye, claims and offsets left as they were
        doomed.wait()
        again.start()

        async def all_sent() -> list[dict[str, Any]] | None:
            assert steady.process is not None and steady.process.poll() is None, \
                f"replica B exited; see {log.name}"
            page = (await client.get("/v1/deliveries", params={"limit": 500})).json()
            items: list[dict[str, Any]] = page["items"]
            done = len(items) >= 24 and all(d["status"] == "sent" for d in items)
            return items if done else None

        deliveries = await wait_until(all_sent, timeout=60, message="not all sent")
    finally:
        await client.aclose()
        for replica in (doomed, again, steady):
            replica.terminate()
        for replica in (doomed, again, steady):
            replica.wait()
        log.close()

    by_ticket: dict[str, list[str]] = defaultdict(list)
    for d in deliveries:
        by_ticket[d["ticket_id"]].append(d["id"])
    assert sorted(by_ticket) == sorted(e.subject for e in events)
    assert all(len(ids) == 1 for ids in by_ticket.values())  # one delivery per event
    keys: dict[str, set[str]] = defaultdict(set)
    for request in receiver.requests:
        keys[request.ticket_id].add(request.headers["idempotency-key"])
    # A send cut off by the kill may be repeated after its lease, always under the same
    # key, so the receiver can drop it; no event ever got a second delivery id.
    assert dict(keys) == {t: {ids[0]} for t, ids in by_ticket.items()}
