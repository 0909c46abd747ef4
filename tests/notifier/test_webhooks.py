"""Webhooks: Standard Webhooks signatures checked by the reference library, Slack
payloads, rules routing to targets, the SSRF guard, and the rules REST API."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from escalator.notifier.guard import DestinationRefused, Guard
from escalator.notifier.main import SPEC
from tests.notifier.helpers import (
    Receiver,
    assigned,
    breached,
    escalated,
    notifier_settings,
    publish,
)
from tests.support import Env, RunningService, free_port, running, wait_until

OLD = "whsec_" + base64.b64encode(b"old-secret-0123456789abcdef").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-0123456789abcdef").decode()


async def settled(svc: RunningService, ticket_id: str, count: int) -> list[dict[str, Any]]:
    async def done() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (await svc.client.get(
            "/v1/deliveries", params={"ticket_id": ticket_id})).json()["items"]
        finished = [d for d in items if d["status"] != "pending"]
        return items if len(finished) == len(items) == count else None

    result: list[dict[str, Any]] = await wait_until(done, message=f"{ticket_id} not settled")
    return result


async def test_signed_slack_routed_and_guarded(env: Env, receiver: Receiver) -> None:
    config = env.tmp_path / "escalator.yaml"
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: connection refused
    config.write_text(yaml.safe_dump({"notifier": {
        "webhooks": [
            {"id": "chat", "url": receiver.url("/slack"), "events": ["ticket.escalated"],
             "format": "slack"},
            {"id": "pager", "url": receiver.url("/pager"), "events": ["ticket.escalated"],
             "enabled": True},
            {"id": "intranet", "url": "http://10.255.255.1/hook", "events": ["sla.breached"]},
            {"id": "dead", "url": dead, "events": ["sla.breached"]},
        ],
        "rules": [{"id": "critical-to-pager", "events": ["ticket.assigned"],
                   "severities": ["critical"], "channel": "webhook", "target": "pager"}],
    }}))
    settings = notifier_settings(env, webhook_url=receiver.url(), config_file=Path(config),
                                 webhook_signing_secrets=[NEW, OLD], breaker_failures=2,
                                 breaker_pause_seconds=60, delivery_max_attempts=4)
    critical, normal, up, breach = (assigned(severity="critical"), assigned(), escalated(),
                                    breached())
    async with running(SPEC, settings) as svc:
        for event in (critical, normal, up, breach):
            await publish(env, event)
        paged = await settled(svc, critical.subject, 2)
        assert sorted(d["target_id"] for d in paged) == ["default", "pager"]
        assert [d["target_id"] for d in await settled(svc, normal.subject, 1)] == ["default"]
        assert len(await settled(svc, up.subject, 3)) == 3

        async def paused() -> dict[str, Any] | None:
            items = (await svc.client.get("/v1/deliveries",
                                          params={"ticket_id": breach.subject})).json()["items"]
            by_target = {d["target_id"]: d for d in items}
            hit = by_target.get("dead")
            done = hit and "paused" in (hit["last_error"] or "") and "intranet" in by_target
            return by_target if done else None

        by_target = await wait_until(paused, message="breaker never paused the destination")
        refused = by_target["intranet"]
        assert refused["status"] == "failed" and refused["attempts"] == 1
        assert refused["last_error"].startswith("destination refused: host 10.255.255.1")
        stalled = by_target["dead"]
        # Two real failures opened the breaker; the paused round spent no attempt.
        assert stalled["status"] == "pending" and stalled["attempts"] == 2

        # Rules over REST: validated, stored only when valid.
        rule = {"id": "execs", "events": ["executive_escalation"], "recipients": ["executives"]}
        created = await svc.client.post("/v1/rules", json=rule)
        assert created.status_code == 201, created.text
        assert (await svc.client.post("/v1/rules", json=rule)).status_code == 409
        bad = await svc.client.put("/v1/rules/execs", json={**rule, "recipients": ["pope"]})
        assert bad.status_code == 422 and "recipients" in bad.json()["detail"]
        assert bad.headers["content-type"] == "application/problem+json"
        ghost = await svc.client.put("/v1/rules/ghost", json={
            "events": ["ticket.assigned"], "channel": "webhook", "target": "nowhere"})
        assert ghost.status_code == 422 and ghost.json()["errors"][0]["field"] == "target"
        assert (await svc.client.get("/v1/rules/ghost")).status_code == 404
        stored = (await svc.client.get("/v1/rules/execs")).json()
        assert stored["recipients"] == ["executives"] and stored["channel"] == "email"
        changed = await svc.client.put("/v1/rules/execs", json={**rule, "min_level": 2})
        assert changed.status_code == 200 and changed.json()["min_level"] == 2
        ids = [r["id"] for r in (await svc.client.get("/v1/rules")).json()["items"]]
        assert ids == ["critical-to-pager", "execs"]
        assert (await svc.client.delete("/v1/rules/execs")).status_code == 204
        assert (await svc.client.delete("/v1/rules/execs")).status_code == 404
        anonymous = await svc.client.post("/v1/rules", json=rule, headers={"Authorization": ""})
        assert anonymous.status_code == 401

    hook = Webhook(NEW)
    for request in receiver.requests:
        headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
        assert len(headers["webhook-signature"].split(" ")) == 2  # rotation: both secrets
        assert hook.verify(request.body, headers) is not None
        assert Webhook(OLD).verify(request.body, headers) is not None
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + base64.b64encode(b"someone-else").decode()).verify(
                request.body, headers)
        assert headers["webhook-id"] == request.headers["idempotency-key"]
    [slack] = [r for r in receiver.requests if r.path == "/slack"]
    body = json.loads(slack.body)
    assert set(body) == {"text", "blocks"} and body["text"].startswith(f"Ticket {up.subject}")
    assert body["blocks"][0]["text"]["type"] == "mrkdwn"


@pytest.mark.parametrize(("url", "allowed", "private", "reason"), [
    ("http://127.0.0.1:9/x", [], [], "non-public address 127.0.0.1"),
    ("http://[::1]:9/x", [], [], "non-public address ::1"),
    ("http://169.254.169.254/latest/meta-data", [], [], "non-public address 169.254"),
    ("http://192.168.1.10/x", [], [], "non-public"),
    ("http://8.8.8.8/x", ["hooks.example"], [], "not on the webhook allowlist"),
    ("ftp://8.8.8.8/x", [], [], "not an http(s) URL"),
])
async def test_guard_refuses(url: str, allowed: list[str], private: list[str], reason: str
                             ) -> None:
    with pytest.raises(DestinationRefused, match=re.escape(reason)):
        await Guard(allowed, private).check(url)


@pytest.mark.parametrize(("url", "allowed", "private", "trusted"), [
    ("http://8.8.8.8/x", [], [], []),
    ("http://127.0.0.1:9/x", [], ["127.0.0.1"], []),
    ("https://8.8.8.8/x", ["8.8.8.8"], [], []),
    ("http://127.0.0.1:9/x", [], [], ["http://127.0.0.1:9/hook"]),
])
async def test_guard_admits(url: str, allowed: list[str], private: list[str],
                            trusted: list[str]) -> None:
    await Guard(allowed, private, trusted).check(url)
