"""REST changes to the roster and paths: checked as a whole, refused with nothing applied."""

from __future__ import annotations

from pathlib import Path

import httpx

from escalator.router.main import SPEC
from escalator.router.settings import RouterSettings
from escalator.shared.settings import ApiKeySpec, hash_api_key
from tests.router.factories import TWO_LEVELS, write_config
from tests.support import Env, running

READER = "reader-key-0123456789"


async def test_crud_validates_the_whole_configuration(env: Env, tmp_path: Path) -> None:
    settings = env.settings(
        RouterSettings, config_file=write_config(tmp_path, TWO_LEVELS),
        api_keys=[ApiKeySpec(name="reader", sha256=hash_api_key(READER),
                             scopes=["router:read"])])
    async with running(SPEC, settings) as svc:
        c = svc.client
        # Create a team and an agent in it, with everything the model knows.
        team = await c.put("/v1/teams/billing", json={
            "name": "Billing", "department": "finance", "skills": ["Invoices"]})
        assert team.status_code == 200, team.text
        assert team.json()["skills"] == ["invoices"]
        agent = await c.put("/v1/agents/zoe", json={
            "name": "Zoe", "email": "zoe@desk.example", "team": "billing", "role": "supervisor",
            "languages": ["pt"], "timezone": "America/Sao_Paulo", "chat_handle": "@zoe",
            "shifts": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                        "start": "00:00", "end": "23:59"}]})
        assert agent.status_code == 200, agent.text
        assert agent.json()["on_shift"] in (True, False) and agent.json()["chat_handle"] == "@zoe"
        lead = await c.put("/v1/teams/billing", json={"name": "Billing", "lead": "zoe"})
        assert lead.status_code == 200 and lead.json()["lead"] == "zoe"

        path = await c.put("/v1/escalation-paths/money", json={
            "name": "Money", "on_empty": "skip", "repeat": 1, "levels": [
                {"name": "B1", "team": "billing", "strategy": "round_robin",
                 "ack_timeout_seconds": 600},
                {"name": "Boss", "role": "supervisor", "kind": "hierarchical"}]})
        assert path.status_code == 200, path.text
        assert path.json()["levels"][0]["strategy"] == "round_robin"
        rules = await c.put("/v1/path-rules", json=[
            {"id": "invoices", "path": "money", "match": {"category": "billing"}}])
        assert rules.status_code == 200, rules.text
        assert (await c.get("/v1/path-rules")).json()[0]["match"]["category"] == ["billing"]

        # Invalid changes: 422 naming the place, nothing applied.
        async def refused(response: httpx.Response, detail: str) -> None:
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert detail in response.json()["detail"], response.json()

        await refused(await c.put("/v1/agents/zed", json={
            "name": "Zed", "email": "zed@desk.example", "team": "ghosts"}),
            "agent 'zed' names unknown team 'ghosts'")
        await refused(await c.delete("/v1/agents/zoe"),
                      "escalation path 'money' level 0 ('B1') is empty")
        await refused(await c.put("/v1/path-rules", json=[
            {"id": "x", "path": "nowhere"}]), "path rule 'x' names unknown escalation path")
        await refused(await c.delete("/v1/escalation-paths/money"),
                      "path rule 'invoices' names unknown escalation path 'money'")
        await refused(await c.put("/v1/escalation-paths/money", json={
            "name": "Money", "levels": [{"name": "B1", "team": "nope"}]}),
            "escalation path 'money' level 0 ('B1') names unknown team 'nope'")
        await refused(await c.put("/v1/escalation-paths/money", json={
            "name": "Money", "levels": []}), "levels")
        await refused(await c.put("/v1/agents/zoe", json={
            "id": "other", "name": "Zoe", "email": "zoe@desk.example", "team": "billing"}),
            "body.id 'other' differs")
        # A shift time with a UTC offset: refused, where it used to be stored and then
        # crash every shift check of the agent (its level's routing included).
        offset = await c.put("/v1/agents/zoe", json={
            "name": "Zoe", "email": "zoe@desk.example", "team": "billing", "role": "supervisor",
            "shifts": [{"days": ["sun"], "start": "00:00:00Z", "end": "00:00:00Z"}]})
        assert offset.status_code == 422, offset.text
        assert {e["field"] for e in offset.json()["errors"]} == {
            "body.shifts.0.start", "body.shifts.0.end"}
        agents = {a["id"]: a for a in (await c.get("/v1/agents")).json()["items"]}
        assert "zed" not in agents and agents["zoe"]["shifts"][0]["start"] == "00:00:00"
        paths = {p["id"]: p for p in (await c.get("/v1/escalation-paths")).json()["items"]}
        assert paths["money"]["levels"][0]["team"] == "billing"
        assert [r["id"] for r in (await c.get("/v1/path-rules")).json()] == ["invoices"]

        # Deleting in a valid order works; unknown ids are 404; reading is not writing.
        assert (await c.put("/v1/path-rules", json=[])).status_code == 200
        assert (await c.delete("/v1/escalation-paths/money")).status_code == 204
        assert (await c.delete("/v1/escalation-paths/money")).status_code == 404
        reader = {"Authorization": f"Bearer {READER}"}
        assert (await c.get("/v1/teams", headers=reader)).status_code == 200
        forbidden = await c.delete("/v1/agents/zoe", headers=reader)
        assert forbidden.status_code == 403 and "router:write" in forbidden.json()["detail"]
