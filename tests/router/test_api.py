"""The read API, and how the YAML file reaches the tables across restarts."""

from __future__ import annotations

import copy
from pathlib import Path

from escalator.router.main import SPEC
from escalator.router.settings import RouterSettings
from tests.router.factories import TWO_LEVELS, write_config
from tests.support import Env, running


async def test_unknown_ticket_is_a_404_problem(env: Env, tmp_path: Path) -> None:
    settings = env.settings(RouterSettings, config_file=write_config(tmp_path, TWO_LEVELS))
    async with running(SPEC, settings) as svc:
        response = await svc.client.get("/v1/assignments/nope")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "no assignment for ticket nope"
        anonymous = await svc.client.get("/v1/agents", headers={"Authorization": ""})
        assert anonymous.status_code == 401
        openapi = (await svc.client.get("/openapi.json")).json()
        assert "/v1/assignments/{ticket_id}" in openapi["paths"]


async def test_lists_and_restart_upserts_the_file(env: Env, tmp_path: Path) -> None:
    settings = env.settings(RouterSettings, config_file=write_config(tmp_path, TWO_LEVELS))
    async with running(SPEC, settings) as svc:
        teams = (await svc.client.get("/v1/teams")).json()
        assert [t["id"] for t in teams["items"]] == ["l1", "l2"]
        paths = (await svc.client.get("/v1/escalation-paths")).json()["items"]
        assert paths[0]["is_default"] and paths[0]["levels"][1] | {
            "name": "L2", "team": "l2", "kind": "hierarchical", "strategy": "least_loaded",
            "ack_timeout_seconds": None} == paths[0]["levels"][1]

        first = (await svc.client.get("/v1/agents", params={"limit": 3})).json()
        assert [a["id"] for a in first["items"]] == ["a0", "a1", "a2"]
        rest = (await svc.client.get("/v1/agents", params={"cursor": first["next_cursor"]})).json()
        assert [a["id"] for a in rest["items"]] == ["b1"] and rest["next_cursor"] is None
        idle = (await svc.client.get("/v1/agents", params={"available": "false"})).json()
        assert [a["id"] for a in idle["items"]] == ["a0"]
        assert (await svc.client.get("/v1/agents", params={"cursor": "x"})).status_code == 400

    changed = copy.deepcopy(TWO_LEVELS)
    changed["agents"][0] = {"id": "a0", "name": "Ann Renamed", "email": "ann@desk.example",
                            "team": "l2"}  # says nothing of availability
    changed["escalation_paths"][0]["default"] = False
    changed["escalation_paths"].append(
        {"id": "vip", "name": "VIP", "default": True, "levels": [{"name": "L2", "team": "l2"}]})
    settings = settings.model_copy(update={"config_file": write_config(tmp_path, changed)})
    async with running(SPEC, settings) as svc:
        agents = {a["id"]: a for a in (await svc.client.get("/v1/agents")).json()["items"]}
        assert agents["a0"]["name"] == "Ann Renamed" and agents["a0"]["team"] == "l2"
        assert agents["a0"]["available"] is False  # kept: the file did not say
        paths = (await svc.client.get("/v1/escalation-paths")).json()["items"]
        assert {p["id"]: p["is_default"] for p in paths} == {"std": False, "vip": True}
