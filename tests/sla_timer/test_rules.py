"""Clock rules end to end through the broker: pause/resume, next update, resolution and
reopen, severity change, acknowledgement timeouts and levels, business calendars.

Most scenarios use event times in the past or far deadlines, so they check exact
deadlines without waiting for them; only the update-due and ack-timeout timers fire.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from escalator.shared.events import (
    TicketCommented,
    TicketCreated,
    TicketCustomerReplied,
    TicketReopened,
    TicketResolved,
    TicketUpdated,
    TicketWaitingOnCustomer,
    utcnow,
)
from tests.sla_timer.helpers import (
    PROBE,
    clocks,
    comment,
    new_ticket_id,
    parse,
    send,
    send_assigned,
    serving,
    settings,
    sla_events,
)
from tests.support import Env, wait_until

BERLIN = ZoneInfo("Europe/Berlin")
CONFIG: dict[str, Any] = {"sla": {
    "calendars": [{"id": "berlin", "timezone": "Europe/Berlin",
                   "hours": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                   "holidays": {"dates": ["2030-01-07"], "countries": [{"country": "DE"}]}}],
    "policies": [
        PROBE,
        {"id": "cal", "match": {"category": "cal"}, "calendar": "berlin",
         "first_response": "PT1H"},
        {"id": "pause", "match": {"category": "pause"}, "first_response": "PT1H"},
        {"id": "updates", "match": {"category": "updates"}, "first_response": "PT1H",
         "next_update": "PT1.5S"},
        {"id": "urgent", "match": {"category": "resolve", "severity": "critical"},
         "first_response": "PT15M", "resolution": "PT1H"},
        {"id": "resolve", "match": {"category": "resolve"}, "first_response": "PT1H",
         "resolution": "PT2H"},
        {"id": "ack", "match": {"category": "ack"}, "first_response": "PT1H",
         "on_level_change": "reset"},
    ],
}}


def by_name(items: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(c["name"], c["cycle"]): c for c in items}


async def has_clocks(svc: Any, ticket_id: str, want: set[tuple[str, int, str]]
                     ) -> list[dict[str, Any]] | None:
    """The ticket's clocks once they include every (name, cycle, state) in ``want``."""
    items = await clocks(svc, ticket_id)
    have = {(c["name"], c["cycle"], c["state"]) for c in items}
    return items if want <= have else None


async def test_clock_rules(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "escalator.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    async with serving(env, settings(env, path)) as svc:
        now = utcnow()
        pause, waiting, updates, resolve, ack, cal = (new_ticket_id() for _ in range(6))

        # Pause/resume: 1 s counted before the pause, 90 s paused, then running again.
        # The target is long enough that the clock is not due even without the pause:
        # the consumer may apply the creation a poll before the pause, and a clock due by
        # then would rightly breach (its timer fires once it is due and read).
        await send(env, TicketCreated, pause, at=now - timedelta(seconds=100), category="pause")
        await send(env, TicketWaitingOnCustomer, pause, at=now - timedelta(seconds=99))
        replied = now - timedelta(seconds=9)
        await send(env, TicketCustomerReplied, pause, at=replied,
                   comment=comment(replied, author_type="customer"))
        await send(env, TicketCreated, waiting, at=now, category="pause")
        await send(env, TicketWaitingOnCustomer, waiting, at=now)

        # Next update: each public agent reply meets the pending one and starts the next.
        await send(env, TicketCreated, updates, at=now, category="updates")
        await send(env, TicketCommented, updates, at=now, comment=comment(now, public=False))
        await send(env, TicketCommented, updates, at=now, comment=comment(now))
        later = now + timedelta(milliseconds=100)
        await send(env, TicketCommented, updates, at=later, comment=comment(later))

        # Severity change re-targets; resolve meets resolution; reopen starts cycle 1.
        created = now - timedelta(seconds=600)
        await send(env, TicketCreated, resolve, at=created, category="resolve")
        await send(env, TicketUpdated, resolve, at=now - timedelta(seconds=500),
                   category="resolve", severity="critical")
        await send(env, TicketResolved, resolve, at=now - timedelta(seconds=400),
                   category="resolve", severity="critical")
        await send(env, TicketReopened, resolve, at=now - timedelta(seconds=300),
                   category="resolve", severity="critical")

        # Acknowledgement timeout at level 1: breached, carrying the level.
        await send(env, TicketCreated, ack, at=now, category="ack")
        await send_assigned(env, ack, at=now, level=0, ack_timeout=None)
        await send_assigned(env, ack, at=now, level=1, ack_timeout=0.5)

        # Business hours: Friday 16:30 Berlin + 1 h = Tuesday 09:30 (Monday is a holiday).
        friday = datetime(2030, 1, 4, 16, 30, tzinfo=BERLIN)
        await send(env, TicketCreated, cal, at=friday, category="cal")

        state = by_name(await wait_until(lambda: has_clocks(
            svc, pause, {("first_response", 0, "running")}), message="pause clock"))
        first = state[("first_response", 0)]
        assert parse(first["due_at"]) == replied + timedelta(seconds=3599)
        assert first["paused_at"] is None and 9 <= first["elapsed_seconds"] < 60
        state = by_name(await wait_until(lambda: has_clocks(
            svc, waiting, {("first_response", 0, "paused")}), message="paused clock"))
        assert state[("first_response", 0)]["due_at"] is None

        state = by_name(await wait_until(lambda: has_clocks(svc, updates, {
            ("first_response", 0, "met"), ("next_update", 0, "met"),
            ("next_update", 1, "breached")}), message="update clocks"))
        assert parse(state[("first_response", 0)]["met_at"]) == now  # not the private note
        assert parse(state[("next_update", 1)]["due_at"]) == later + timedelta(seconds=1.5)

        state = by_name(await wait_until(lambda: has_clocks(svc, resolve, {
            ("resolution", 0, "met"), ("resolution", 1, "running"),
            ("first_response", 0, "stopped")}), message="resolution clocks"))
        assert state[("resolution", 0)]["target_seconds"] == 3600  # re-targeted by severity
        assert state[("resolution", 0)]["policy"] == "urgent"
        assert parse(state[("resolution", 0)]["due_at"]) == created + timedelta(hours=1)
        reopened = state[("resolution", 1)]
        assert parse(reopened["started_at"]) == now - timedelta(seconds=300)

        state = by_name(await wait_until(lambda: has_clocks(svc, ack, {
            ("acknowledgement", 0, "breached")}), message="ack clock"))
        assert state[("first_response", 0)]["level"] == 1

        state = by_name(await wait_until(lambda: has_clocks(svc, cal, {
            ("first_response", 0, "running")}), message="calendar clock"))
        assert state[("first_response", 0)]["calendar"] == "berlin"
        assert parse(state[("first_response", 0)]["due_at"]) == datetime(
            2030, 1, 8, 9, 30, tzinfo=BERLIN)

        events = await sla_events(env, 2)
        kinds = {(e["type"], e["data"]["clock"], e["subject"]) for e in events}
        assert kinds == {("sla.update_due", "next_update", updates),
                         ("sla.breached", "acknowledgement", ack)}
        breach = next(e for e in events if e["type"] == "sla.breached")
        assert breach["data"]["level"] == 1


async def test_policy_and_calendar_crud(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "escalator.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    async with serving(env, settings(env, path), consumer_ready=False) as svc:
        client = svc.client
        bad = {"id": "nyc", "timezone": "America/Gotham", "hours": {"mon": ["09:00-17:00"]}}
        response = await client.post("/v1/calendars", json=bad)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert "timezone" in response.text
        for wrong in ({"hours": {"funday": ["09:00-17:00"]}}, {"hours": {"mon": ["9-5"]}},
                      {"holidays": {"countries": [{"country": "XX"}]}}):
            answer = await client.post("/v1/calendars", json={"id": "nyc", **wrong})
            assert answer.status_code == 422, wrong
        assert (await client.get("/v1/calendars/nyc")).status_code == 404

        good = {"id": "nyc", "timezone": "America/New_York",
                "hours": {"mon": ["09:00-17:00", "22:00-06:00"]}}
        assert (await client.post("/v1/calendars", json=good)).status_code == 201
        assert (await client.post("/v1/calendars", json=good)).status_code == 409
        ids = [c["id"] for c in (await client.get("/v1/calendars")).json()["items"]]
        assert ids == ["berlin", "nyc"]

        policy = {"id": "night", "match": {"channel": "phone"}, "calendar": "nowhere",
                  "first_response": "PT30M", "warning_before": "PT5M"}
        response = await client.post("/v1/sla-policies", json=policy)
        assert response.status_code == 422 and "calendar" in response.text
        response = await client.post("/v1/sla-policies", json={**policy, "first_response": "PT0S"})
        assert response.status_code == 422 and "first_response" in response.text
        assert (await client.get("/v1/sla-policies/night")).status_code == 404

        created = await client.post("/v1/sla-policies", json={**policy, "calendar": "nyc"})
        assert created.status_code == 201
        body = created.json()
        assert body["position"] == len(CONFIG["sla"]["policies"])
        assert body["warning_before_seconds"] == 300 and body["calendar"] == "nyc"
        replaced = await client.put("/v1/sla-policies/night",
                                    json={**policy, "calendar": None, "resolution": "PT4H"})
        assert replaced.status_code == 200 and replaced.json()["resolution_seconds"] == 14400
        assert replaced.json()["position"] == body["position"]

        in_use = {**policy, "id": "night2", "calendar": "nyc"}
        assert (await client.post("/v1/sla-policies", json=in_use)).status_code == 201
        assert (await client.delete("/v1/calendars/nyc")).status_code == 409
        assert (await client.delete("/v1/sla-policies/night2")).status_code == 204
        assert (await client.delete("/v1/calendars/nyc")).status_code == 204
        assert (await client.get("/v1/calendars/nyc")).status_code == 404
