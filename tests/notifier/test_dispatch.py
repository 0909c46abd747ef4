"""Webhook delivery end to end: broker in, real HTTP receiver out, outcome events back.

Starting a notifier costs a consumer-group join (~5 s on the local broker), so each test
runs one notifier and drives several tickets through it, each scripted differently.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import yaml

from escalator.notifier.main import SPEC
from escalator.notifier.signing import verify
from tests.notifier.helpers import (
    Receiver,
    assigned,
    breached,
    escalated,
    notifier_settings,
    publish,
)
from tests.support import Env, RunningService, free_port, read_topic, running, wait_until

SECRET = "s3cr3t-for-tests"


async def deliveries(svc: RunningService, ticket_id: str) -> list[dict[str, Any]]:
    response = await svc.client.get("/v1/deliveries", params={"ticket_id": ticket_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def settled(svc: RunningService, ticket_id: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait until ``count`` deliveries of the ticket exist and none is pending."""

    async def done() -> list[dict[str, Any]] | None:
        items = await deliveries(svc, ticket_id)
        finished = [d for d in items if d["status"] != "pending"]
        return items if len(finished) == len(items) == count else None

    result: list[dict[str, Any]] = await wait_until(done, message=f"{ticket_id} not settled")
    return result


async def notifications(env: Env, count: int) -> dict[str, dict[str, Any]]:
    """The ``notification.*`` events on the topic, by the ticket they are about."""
    records = await read_topic(env.broker.bootstrap, f"{env.prefix}notifications", count=count)
    assert len(records) == count
    events = [json.loads(r.value) for r in records]
    return {e["subject"]: e for e in events}


async def test_assignment_is_posted_once_signed_logged_and_reported(
    env: Env, receiver: Receiver
) -> None:
    first = assigned()
    ticket_id = first.subject
    settings = notifier_settings(env, webhook_url=receiver.url(), webhook_secret=SECRET)
    async with running(SPEC, settings) as svc:
        await publish(env, first)
        await publish(env, first)  # the broker redelivers: still one POST
        await publish(env, escalated(ticket_id))
        # Same key, same partition: once the escalation is planned, so was the duplicate.
        items = await settled(svc, ticket_id, count=2)
        by_type = {d["about_event_type"]: d for d in items}
        delivery = by_type["ticket.assigned"]
        assert delivery["status"] == "sent" and delivery["attempts"] == 1
        assert delivery["about_event_id"] == first.id and delivery["target_id"] == "default"
        assert delivery["recipient"] == receiver.url()
        outcomes = await read_topic(env.broker.bootstrap, f"{env.prefix}notifications",
                                    count=2)

    assert [r.json()["event"]["type"] for r in receiver.requests] == [
        "ticket.assigned", "ticket.escalated"]
    request = receiver.requests[0]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == delivery["id"]
    assert request.headers["x-escalator-event-type"] == "ticket.assigned"
    body = request.json()
    assert body == delivery["payload"]
    assert body["delivery_id"] == delivery["id"]
    assert body["event"]["id"] == first.id and body["event"]["subject"] == ticket_id
    assert body["event"]["data"]["assignee"]["name"] == "Alice Moreau"
    assert body["text"] == f"Ticket {ticket_id} (high) assigned at L1 front line to Alice Moreau"
    assert receiver.requests[1].json()["text"] == (
        f"Ticket {ticket_id} escalated from L1 front line to L2 specialists (sla_breach); "
        "now held by Chen Wei"
    )

    header = request.headers["x-escalator-signature"]
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + request.body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    now = int(time.time())
    assert abs(int(parts["t"]) - now) < 60
    assert verify(SECRET, request.body, header, now=now)
    assert not verify("another-secret", request.body, header, now=now)
    assert not verify(SECRET, request.body + b" ", header, now=now)
    assert not verify(SECRET, request.body, header, now=now + 3600)

    sent = {json.loads(r.value)["data"]["about_event_id"]: json.loads(r.value) for r in outcomes}
    outcome = sent[first.id]
    assert outcome["type"] == "notification.sent" and outcome["subject"] == ticket_id
    assert outcome["data"]["delivery_id"] == delivery["id"]
    assert outcome["data"]["attempts"] == 1 and outcome["data"]["channel"] == "webhook"
    assert all(r.key == ticket_id.encode() for r in outcomes)


async def test_retries_then_sends_or_gives_up(env: Env, receiver: Receiver) -> None:
    flaky, rejected, down, slow, breach = (assigned(), assigned(), assigned(), assigned(),
                                           breached())
    receiver.script = {flaky.subject: [500, 503], rejected.subject: [400],
                       down.subject: [503, 503, 503]}
    receiver.delays = {slow.subject: [1.5]}
    config = env.tmp_path / "escalator.yaml"
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: connection refused
    config.write_text(yaml.safe_dump({"notifier": {"webhooks": [
        {"id": "pager", "url": dead, "events": ["sla.breached"]}]}}))
    settings = notifier_settings(env, webhook_url=receiver.url(), webhook_timeout_seconds=0.5,
                                 config_file=Path(config))
    async with running(SPEC, settings) as svc:
        for event in (flaky, rejected, down, slow, breach):
            await publish(env, event)

        [ok] = await settled(svc, flaky.subject)
        assert ok["status"] == "sent" and ok["attempts"] == 3
        assert ok["last_error"] is None and ok["sent_at"] is not None
        attempts = receiver.about(flaky.subject)
        assert len(attempts) == 3 and len({r.body for r in attempts}) == 1
        assert {r.headers["idempotency-key"] for r in attempts} == {ok["id"]}

        [no] = await settled(svc, rejected.subject)
        assert no["status"] == "failed" and no["attempts"] == 1
        assert no["last_error"].startswith("HTTP 400") and no["next_attempt_at"] is None
        assert len(receiver.about(rejected.subject)) == 1

        [gone] = await settled(svc, down.subject)
        assert gone["status"] == "failed" and gone["attempts"] == 3
        assert gone["last_error"].startswith("HTTP 503")

        [late] = await settled(svc, slow.subject)
        assert late["status"] == "sent" and late["attempts"] == 2

        [refused] = await settled(svc, breach.subject)
        assert refused["target_id"] == "pager" and refused["recipient"] == dead
        assert refused["status"] == "failed" and refused["attempts"] == 3
        assert "ConnectError" in refused["last_error"]
        assert receiver.about(breach.subject) == []  # the default target hears no breaches

        reported = await notifications(env, 5)
        letters = await read_topic(env.broker.bootstrap, f"{env.prefix}dlq", count=3)
        metrics = (await svc.client.get("/metrics")).text

    assert reported[flaky.subject]["type"] == "notification.sent"
    assert reported[flaky.subject]["data"]["attempts"] == 3
    assert reported[slow.subject]["type"] == "notification.sent"
    for event in (rejected, down, breach):
        failure = reported[event.subject]
        assert failure["type"] == "notification.failed"
        assert failure["data"]["error"]
    assert reported[breach.subject]["data"]["recipient"] == dead
    # What was given up on also lands on the dead-letter topic, keyed by ticket.
    dead_letters = {r.key.decode(): json.loads(r.value) for r in letters}
    assert set(dead_letters) == {rejected.subject, down.subject, breach.subject}
    assert dead_letters[down.subject]["reason"] == "delivery_failed"
    assert dead_letters[down.subject]["delivery"]["attempts"] == 3
    assert 'escalator_deliveries_total{channel="webhook",outcome="retried"}' in metrics
    assert "escalator_delivery_seconds_bucket" in metrics
