"""The clocks and policies API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from escalator.shared.events import TicketCreated
from tests.sla_timer.helpers import clock, new_ticket_id, policy_file, send, serving, settings
from tests.support import Env, wait_until

POLICIES: list[dict[str, Any]] = [
    {"id": "vip", "match": {"tier": "enterprise"}, "first_response": "PT5M"},
    {"id": "high", "match": {"severity": "high"}, "first_response": "PT1H", "warning_at": 0.75},
]


async def test_unknown_ticket_is_a_404_problem(env: Env, tmp_path: Path) -> None:
    config = policy_file(tmp_path, *POLICIES)
    async with serving(env, settings(env, config), consumer_ready=False) as svc:
        response = await svc.client.get("/v1/tickets/nope/clocks")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404
        anonymous = await svc.client.get("/v1/sla-policies", headers={"Authorization": ""})
        assert anonymous.status_code == 401


async def test_policies_in_order_and_clocks_keep_their_snapshot(
    env: Env, tmp_path: Path
) -> None:
    ticket_id, unmatched = new_ticket_id(), new_ticket_id()
    async with serving(env, settings(env, policy_file(tmp_path, *POLICIES))) as svc:
        listed = (await svc.client.get("/v1/sla-policies")).json()["items"]
        assert [(p["id"], p["position"]) for p in listed] == [("probe", 0), ("vip", 1), ("high", 2)]
        assert listed[2]["match"]["severity"] == "high" and listed[2]["warning_at"] == 0.75

        await send(env, TicketCreated, unmatched, severity="low")
        await send(env, TicketCreated, ticket_id)
        state = await wait_until(lambda: clock(svc, ticket_id), message="clock not started")
        assert state["policy"] == "high" and state["target_seconds"] == 3600
        assert state["status"] == "running" and 0 <= state["elapsed_seconds"] < 60
        assert 3500 < state["remaining_seconds"] <= 3600
        # Events of one key are applied in order, so the later one being done means the
        # unmatched ticket was handled too: no policy matched, so it has no clock.
        assert await clock(svc, unmatched) is None

    edited = [POLICIES[0], {**POLICIES[1], "first_response": "PT2H"}]
    restarted = settings(env, policy_file(tmp_path, *edited))
    async with serving(env, restarted, consumer_ready=False) as svc:
        listed = (await svc.client.get("/v1/sla-policies")).json()["items"]
        assert listed[2]["first_response_seconds"] == 7200
        state = await clock(svc, ticket_id)
        assert state is not None and state["target_seconds"] == 3600
