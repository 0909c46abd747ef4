from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import func, select

from escalator.postmortem.main import SPEC
from escalator.postmortem.settings import PostmortemSettings
from escalator.shared.db import outbox
from tests.postmortem.factories import closed, envelope, notified, send, story
from tests.support import Env, RunningService, read_topic, running, wait_until


async def postmortem_of(svc: RunningService, ticket_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        items = (await svc.client.get("/v1/postmortems",
                                      params={"ticket_id": ticket_id})).json()["items"]
        return items[0] if items else None

    return await wait_until(found, message=f"no post-mortem for {ticket_id}")


async def timeline_with(svc: RunningService, postmortem_id: str, event_id: str) -> dict[str, Any]:
    """The post-mortem once ``event_id`` is in its timeline."""

    async def has_it() -> dict[str, Any] | None:
        body = (await svc.client.get(f"/v1/postmortems/{postmortem_id}")).json()
        return body if event_id in {e["event_id"] for e in body["timeline"]} else None

    return await wait_until(has_it, message=f"{event_id} not in the timeline")


async def created_events(svc: RunningService) -> int:
    async with svc.runtime.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(outbox)
                                     .where(outbox.c.event_type == "postmortem.created"))
    return int(count or 0)


async def test_close_opens_one_postmortem_with_ordered_timeline_and_measures(env: Env) -> None:
    ticket_id = str(uuid.uuid4())
    events = [envelope(data, s) for s, data in story(ticket_id)]
    close = envelope(closed(ticket_id), 400)
    async with running(SPEC, env.settings(PostmortemSettings)) as svc:
        await send(env.broker.bootstrap, env.prefix, *events, close)
        postmortem = await postmortem_of(svc, ticket_id)
        assert postmortem["status"] == "draft" and postmortem["severity"] == "high"
        assert postmortem["customer_name"] == "Acme Ops" and postmortem["channel"] == "api"

        # A notification that arrives after the close, about something earlier.
        late = envelope(notified(ticket_id, "d3"), 100)
        await send(env.broker.bootstrap, env.prefix, late)
        body = await timeline_with(svc, postmortem["id"], late.id)
        # Topics are consumed independently: wait until every event is in.
        for event in events:
            body = await timeline_with(svc, postmortem["id"], event.id)

        expected = sorted([*events, close, late], key=lambda e: (e.time, e.id))
        assert [e["event_id"] for e in body["timeline"]] == [e.id for e in expected]
        assert body["timeline"][0]["summary"] == "high ticket opened via api: Checkout fails"
        assert body["timeline"][0]["source"] == "/test"
        assert body["measures"] == {
            "time_to_first_response_seconds": 90.0, "time_to_close_seconds": 400.0,
            "levels_reached": 2, "escalations": {"hierarchical": 1},
            "sla_breaches": {"first_response": 1}, "reassignments": 1,
            "notifications_sent": 2, "notifications_failed": 1,
        }

        records = await read_topic(env.broker.bootstrap, f"{env.prefix}postmortems", count=1)
        announced = json.loads(records[0].value)
        assert records[0].key == ticket_id.encode()
        assert announced["type"] == "postmortem.created" and announced["subject"] == ticket_id
        assert announced["data"]["postmortem_id"] == postmortem["id"]
        # The ticket topic is one ordered partition per ticket: at least its own four
        # events (created, acknowledged, resolved, closed) preceded the post-mortem.
        assert 4 <= announced["data"]["timeline_events"] <= len(events) + 1


async def test_one_postmortem_per_ticket_however_often_it_closes(env: Env) -> None:
    tickets = [str(uuid.uuid4()) for _ in range(3)]
    first = envelope(closed(tickets[0]), 400)
    reclose = envelope(closed(tickets[0]), 900)
    async with running(SPEC, env.settings(PostmortemSettings)) as svc:
        # The same close delivered twice, then a later close of the reopened ticket: all
        # on one partition, so once the last is in the timeline the others were applied.
        await send(env.broker.bootstrap, env.prefix, first, first, reclose,
                   *[envelope(closed(t), 400) for t in tickets[1:]])
        ids = [(await postmortem_of(svc, t))["id"] for t in tickets]
        body = await timeline_with(svc, ids[0], reclose.id)
        assert [e["event_id"] for e in body["timeline"]] == [first.id, reclose.id]
        assert body["closed_at"] == reclose.time.isoformat().replace("+00:00", "Z")
        assert await created_events(svc) == 3

        only = (await svc.client.get("/v1/postmortems", params={"ticket_id": tickets[0]})).json()
        assert [p["id"] for p in only["items"]] == [ids[0]] and only["next_cursor"] is None

        drafts = (await svc.client.get("/v1/postmortems", params={"status": "draft"})).json()
        assert len(drafts["items"]) == 3

        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await svc.client.get("/v1/postmortems", params=params)).json()
            seen += page["items"]
            if (cursor := page["next_cursor"]) is None:
                break
        assert sorted(p["id"] for p in seen) == sorted(ids)
        newest_first = [(p["created_at"], p["id"]) for p in seen]
        assert newest_first == sorted(newest_first, reverse=True)

        missing = await svc.client.get(f"/v1/postmortems/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["title"] == "Not Found"
        for params, status in (({"cursor": "x"}, 400), ({"status": "done"}, 422),
                               ({"limit": 0}, 422)):
            answer = await svc.client.get("/v1/postmortems", params=params)
            assert answer.status_code == status, params
            assert answer.headers["content-type"] == "application/problem+json"
        anonymous = await svc.client.get("/v1/postmortems", headers={"Authorization": ""})
        assert anonymous.status_code == 401
