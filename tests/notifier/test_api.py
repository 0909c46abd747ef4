"""The delivery log and target listing: filters, keyset pagination, errors, auth."""

from __future__ import annotations

from pathlib import Path

import yaml

from escalator.notifier.main import SPEC
from tests.notifier.helpers import Receiver, assigned, escalated, notifier_settings, publish
from tests.support import Env, running, wait_until


async def test_delivery_log_and_targets(env: Env, receiver: Receiver) -> None:
    config = env.tmp_path / "escalator.yaml"
    config.write_text(yaml.safe_dump({"notifier": {"webhooks": [
        {"id": "ops-chat", "url": receiver.url("/ops"), "events": ["ticket.escalated"]},
        {"id": "muted", "url": receiver.url("/muted"), "events": ["ticket.escalated"],
         "enabled": False},
    ]}}))
    settings = notifier_settings(env, webhook_url=receiver.url(), config_file=Path(config))
    rejected = assigned()
    receiver.script = {rejected.subject: [400]}
    events = [assigned() for _ in range(4)] + [rejected, escalated()]
    async with running(SPEC, settings) as svc:
        targets = (await svc.client.get("/v1/webhook-targets")).json()["items"]
        assert [(t["id"], t["enabled"], t["events"]) for t in targets] == [
            ("default", True, ["ticket.assigned", "ticket.escalated"]),
            ("muted", False, ["ticket.escalated"]),
            ("ops-chat", True, ["ticket.escalated"]),
        ]
        for event in events:
            await publish(env, event)

        async def all_settled() -> list[dict[str, object]] | None:
            page = (await svc.client.get("/v1/deliveries", params={"limit": 500})).json()
            items: list[dict[str, object]] = page["items"]
            done = len(items) == 7 and all(d["status"] != "pending" for d in items)
            return items if done else None

        everything = await wait_until(all_settled, message="deliveries not settled")
        # The escalation went to both subscribed, enabled targets; nothing to "muted".
        escalation = [d for d in everything if d["ticket_id"] == events[-1].subject]
        assert sorted(str(d["target_id"]) for d in escalation) == ["default", "ops-chat"]
        assert {r.path for r in receiver.requests} == {"/hook", "/ops"}

        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await svc.client.get("/v1/deliveries", params=params)).json()
            assert len(page["items"]) <= 3
            seen += [d["id"] for d in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [d["id"] for d in everything]  # newest first, no gaps or repeats
        assert len(set(seen)) == 7

        failed = (await svc.client.get("/v1/deliveries", params={"status": "failed"})).json()
        assert [d["ticket_id"] for d in failed["items"]] == [rejected.subject]
        one = (await svc.client.get(f"/v1/deliveries/{failed['items'][0]['id']}")).json()
        assert one["last_error"].startswith("HTTP 400")

        missing = await svc.client.get("/v1/deliveries/nope")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        for bad in ({"cursor": "garbage"}, {"status": "lost"}, {"limit": 0},
                    {"channel": "pigeon"}):
            response = await svc.client.get("/v1/deliveries", params=bad)
            assert response.status_code in (400, 422), bad
        anonymous = await svc.client.get("/v1/deliveries", headers={"Authorization": ""})
        assert anonymous.status_code == 401
        assert (await svc.client.get("/healthz", headers={"Authorization": ""})).status_code == 200
