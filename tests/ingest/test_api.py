from __future__ import annotations

import json

from escalator.ingest.main import SPEC
from escalator.ingest.settings import IngestSettings
from escalator.shared.pagination import encode_cursor
from tests.ingest.helpers import api_event
from tests.support import Env, read_topic, running


async def test_event_creates_ticket_and_emits_created(env: Env) -> None:
    async with running(SPEC, env.settings(IngestSettings)) as svc:
        response = await svc.client.post("/v1/channels/api/events", json=api_event())
        assert response.status_code == 202, response.text
        ticket_id = response.json()["ticket_id"]
        assert response.json()["created"] is True

        ticket = (await svc.client.get(f"/v1/tickets/{ticket_id}")).json()
        assert ticket["status"] == "open" and ticket["severity"] == "high"

        records = await read_topic(env.broker.bootstrap, f"{env.prefix}tickets", count=1)
        event = json.loads(records[0].value)
        assert records[0].key == ticket_id.encode()
        assert event["specversion"] == "1.0" and event["type"] == "ticket.created"
        assert event["subject"] == ticket_id and event["data"]["customer"]["name"] == "Acme Ops"


async def test_same_external_id_updates_the_same_ticket(env: Env) -> None:
    async with running(SPEC, env.settings(IngestSettings)) as svc:
        first = (await svc.client.post("/v1/channels/api/events", json=api_event())).json()
        again = await svc.client.post("/v1/channels/api/events",
                                      json=api_event(severity="critical"))
        assert again.json() == {"ticket_id": first["ticket_id"], "created": False}
        ticket = (await svc.client.get(f"/v1/tickets/{first['ticket_id']}")).json()
        assert ticket["severity"] == "critical"
        records = await read_topic(env.broker.bootstrap, f"{env.prefix}tickets", count=2)
        assert [json.loads(r.value)["type"] for r in records] == ["ticket.created",
                                                                  "ticket.updated"]


async def test_bad_input_names_the_field_and_stores_nothing(env: Env) -> None:
    async with running(SPEC, env.settings(IngestSettings)) as svc:
        response = await svc.client.post(
            "/v1/channels/api/events",
            json=api_event(severity="urgent", customer={"email": "nope", "name": "A"}),
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        fields = {e["field"] for e in response.json()["errors"]}
        assert fields == {"body.severity", "body.customer.email"}
        listing = (await svc.client.get("/v1/tickets")).json()
        assert listing["items"] == []


async def test_requires_api_key_with_scope(env: Env) -> None:
    async with running(SPEC, env.settings(IngestSettings)) as svc:
        anonymous = await svc.client.get("/v1/tickets", headers={"Authorization": ""})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = await svc.client.get("/v1/tickets", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await svc.client.get("/healthz", headers={"Authorization": ""})).status_code == 200


async def test_lifecycle_and_pagination(env: Env) -> None:
    async with running(SPEC, env.settings(IngestSettings)) as svc:
        ids = []
        for n in range(5):
            r = await svc.client.post("/v1/channels/api/events",
                                      json=api_event(external_id=f"e{n}"))
            ids.append(r.json()["ticket_id"])
        ack = await svc.client.post(f"/v1/tickets/{ids[0]}/acknowledge")
        assert ack.json()["status"] == "acknowledged"
        assert (await svc.client.post(f"/v1/tickets/{ids[0]}/acknowledge")).status_code == 200
        assert (await svc.client.post(f"/v1/tickets/{ids[0]}/close")).json()["status"] == "closed"
        assert (await svc.client.post(f"/v1/tickets/{ids[1]}/close")).status_code == 200
        conflict = await svc.client.post(f"/v1/tickets/{ids[1]}/acknowledge")
        assert conflict.status_code == 409
        assert conflict.json()["ticket_status"] == "closed"

        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await svc.client.get("/v1/tickets", params=params)).json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids) and len(seen) == 5
        for cursor in ("garbage", encode_cursor("not-a-time", "x")):
            bad = await svc.client.get("/v1/tickets", params={"cursor": cursor})
            assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "query.cursor"
        assert (await svc.client.get("/v1/tickets/none")).status_code == 404
