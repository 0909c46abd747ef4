from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import func, select

from escalator.postmortem.main import SPEC
from escalator.postmortem.models import TimelineEvent
from escalator.postmortem.settings import PostmortemSettings
from escalator.shared.db import outbox
from escalator.shared.events import Severity, TicketClosed, TicketReopened, TicketStatus
from tests.postmortem.factories import (
    breached,
    closed,
    envelope,
    notified,
    send,
    story,
    ticket,
)
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
    config = env.tmp_path / "escalator.yaml"
    config.write_text("postmortem:\n  business_hours: {timezone: UTC}\n")
    async with running(SPEC, env.settings(PostmortemSettings, config_file=config)) as svc:
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
        measures = body["measures"]
        assert {k: v for k, v in measures.items() if k != "level_holds"} == {
            "time_to_first_response_seconds": 90.0, "time_to_close_seconds": 400.0,
            "time_to_resolution_seconds": 300.0,
            # 09:00-17:00 UTC weekdays (config below): the whole story is in hours.
            "time_to_first_response_business_seconds": 90.0,
            "time_to_resolution_business_seconds": 300.0,
            "levels_reached": 2, "escalations": {"hierarchical": 1},
            "time_at_level_seconds": {"L1": 56.0, "L2": 339.0},
            "sla_breaches": {"first_response": 1}, "reassignments": 1,
            "notifications_sent": 2, "notifications_failed": 1, "customer_replies": 0,
            "channels_used": ["api"], "notification_channels": ["webhook"],
        }
        assert [h["assignee"] for h in measures["level_holds"]] == ["Ann", "Bob"]
        assert body["reasons"] == ["escalated_past_first_level", "sla_breach", "severity_high"]
        assert body["action_items"] == [] and body["survey"] is None

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


async def stored(svc: RunningService, event_id: str) -> bool:
    async with svc.runtime.sessionmaker() as session:
        return await session.get(TimelineEvent, event_id) is not None


async def test_only_escalations_get_one_even_when_the_breach_arrives_after_the_close(
    env: Env,
) -> None:
    quiet, late, reopened = (str(uuid.uuid4()) for _ in range(3))

    def medium_close(ticket_id: str, seconds: float) -> Any:
        return envelope(ticket(TicketClosed, ticket_id, TicketStatus.closed,
                               severity=Severity.medium), seconds)

    quiet_close = medium_close(quiet, 400)
    # The reopened ticket's breach lands while it is open again: no post-mortem yet.
    reopened_event = envelope(ticket(TicketReopened, reopened, TicketStatus.open,
                                     severity=Severity.medium), 500)
    async with running(SPEC, env.settings(PostmortemSettings)) as svc:
        await send(env.broker.bootstrap, env.prefix, quiet_close, medium_close(late, 400),
                   medium_close(reopened, 400))
        await send(env.broker.bootstrap, env.prefix, reopened_event)
        await wait_until(lambda: stored(svc, reopened_event.id), message="reopen not stored")
        breach_late = envelope(breached(late, "resolution"), 300)
        breach_reopened = envelope(breached(reopened), 600)
        await send(env.broker.bootstrap, env.prefix, breach_late, breach_reopened)
        postmortem = await postmortem_of(svc, late)
        assert postmortem["reasons"] == ["sla_breach"] and postmortem["severity"] == "medium"
        await wait_until(lambda: stored(svc, breach_reopened.id), message="breach not stored")
        assert await stored(svc, quiet_close.id)
        for ticket_id in (quiet, reopened):
            listing = await svc.client.get("/v1/postmortems", params={"ticket_id": ticket_id})
            assert listing.json()["items"] == [], ticket_id
        assert await created_events(svc) == 1
