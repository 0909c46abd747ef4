"""The review workflow, action items, the change log and the survey, on a running
service: rules enforced, refusals store nothing, every change has who and when."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx

from escalator.postmortem.main import SPEC
from escalator.postmortem.settings import PostmortemSettings
from escalator.shared import tokens
from escalator.shared.events import utcnow
from escalator.shared.settings import ApiKeySpec, hash_api_key
from tests.postmortem.factories import closed, envelope, send, story
from tests.postmortem.test_api import postmortem_of
from tests.support import Env, read_topic, running

SECRET = "survey-test-secret"
KEYS = [ApiKeySpec(name="alice", sha256=hash_api_key("alice-key"),
                   scopes=["postmortems:read", "postmortems:write"]),
        ApiKeySpec(name="viewer", sha256=hash_api_key("viewer-key"),
                   scopes=["postmortems:read"])]
CONFIG = "postmortem:\n  root_causes: [product_defect, process]\n"


def as_key(client: httpx.AsyncClient, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def field_of(answer: httpx.Response) -> str:
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    return str(answer.json()["errors"][0]["field"])


async def test_review_workflow_action_items_changes_and_survey(env: Env) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    config = env.tmp_path / "escalator.yaml"
    config.write_text(CONFIG)
    settings = env.settings(PostmortemSettings, config_file=config, api_keys=KEYS,
                            survey_secret=SECRET)
    async with running(SPEC, settings) as svc:
        await send(env.broker.bootstrap, env.prefix,
                   *[envelope(d, s) for s, d in story(a)], envelope(closed(a), 400),
                   envelope(closed(b), 400))
        pm = (await postmortem_of(svc, a))["id"]
        other = (await postmortem_of(svc, b))["id"]
        alice = as_key(svc.client, "alice-key")
        url = f"/v1/postmortems/{pm}"

        async def patch(body: dict[str, Any], status: int) -> httpx.Response:
            answer = await svc.client.patch(url, json=body, headers=alice)
            assert answer.status_code == status, answer.text
            return answer

        async def current() -> dict[str, Any]:
            return dict((await svc.client.get(url)).json())

        viewer = await svc.client.patch(url, json={"summary": "x"},
                                        headers=as_key(svc.client, "viewer-key"))
        assert viewer.status_code == 403
        assert field_of(await patch({"status": "completed"}, 409)) == "body.status"
        assert field_of(await patch({"summary": "x", "bogus": 1}, 422)) == "body.bogus"
        body = (await patch({"summary": "Payments down 6 min", "status": "in_review"},
                            200)).json()
        assert body["status"] == "in_review" and body["summary"] == "Payments down 6 min"
        assert field_of(await patch({"root_cause": {"category": "cosmic_rays", "text": "x"}},
                                    422)) == "body.root_cause.category"
        assert field_of(await patch({"status": "completed"}, 422)) == "body.root_cause"
        # Root cause and completion in one PATCH: refused for want of action items, and
        # the root cause sent with it is not stored either.
        root = {"category": "process", "text": "No runbook for the card gateway."}
        assert field_of(await patch({"root_cause": root, "status": "completed"}, 422)
                        ) == "body.action_items"
        assert (await current())["root_cause"] is None

        items_url = f"{url}/action-items"
        bad = await svc.client.post(items_url, json={"title": "", "owner": "Ann",
                                                     "due_date": "2026-13-01"}, headers=alice)
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"body.title", "body.due_date"}
        today = utcnow().date()
        created = []
        for title, due in (("Write the gateway runbook", today - timedelta(days=1)),
                           ("Alert on card failures", today + timedelta(days=14))):
            answer = await svc.client.post(items_url, headers=alice, json={
                "title": title, "owner": "Ann", "due_date": due.isoformat()})
            assert answer.status_code == 201, answer.text
            created.append(answer.json())
        assert [i["overdue"] for i in created] == [True, False]
        keyed = {**alice, "Idempotency-Key": "retry-me"}
        item = {"title": "Alert on card failures", "owner": "Ann",
                "due_date": created[1]["due_date"]}
        first = await svc.client.post(items_url, headers=keyed, json=item)
        again = await svc.client.post(items_url, headers=keyed, json=item)
        assert first.status_code == again.status_code == 201
        assert first.json()["id"] == again.json()["id"]
        created.append(first.json())
        moved = await svc.client.patch(f"{items_url}/{created[1]['id']}", headers=alice,
                                       json={"status": "done"})
        assert moved.json()["status"] == "done"
        nulled = await svc.client.patch(f"{items_url}/{created[1]['id']}", headers=alice,
                                        json={"owner": None})
        assert field_of(nulled) == "body.owner"
        elsewhere = await svc.client.patch(f"/v1/postmortems/{other}/action-items/"
                                           f"{created[0]['id']}", headers=alice,
                                           json={"status": "done"})
        assert elsewhere.status_code == 404

        done = (await patch({"root_cause": root, "status": "completed"}, 200)).json()
        assert done["status"] == "completed" and done["reviewer"] == "alice"
        assert done["completed_at"] is not None and done["root_cause"] == root
        assert done["action_items_overdue"] == 1 and len(done["action_items"]) == 3
        assert field_of(await patch({"summary": "rewrite history"}, 409)) == "body.status"
        # Action items live on after the review.
        late = await svc.client.patch(f"{items_url}/{created[0]['id']}", headers=alice,
                                      json={"status": "in_progress"})
        assert late.status_code == 200 and late.json()["overdue"] is True

        changes = (await svc.client.get(f"{url}/changes")).json()
        assert {c["actor"] for c in changes} == {"alice"}
        assert [(c["target"].split(":")[0], c["field"], c["new"]) for c in changes] == [
            ("postmortem", "summary", "Payments down 6 min"),
            ("postmortem", "status", "in_review"),
            ("action_item", "created", {"title": "Write the gateway runbook", "owner": "Ann",
                                        "due_date": created[0]["due_date"], "status": "open"}),
            ("action_item", "created", {"title": "Alert on card failures", "owner": "Ann",
                                        "due_date": created[1]["due_date"], "status": "open"}),
            ("action_item", "created", {"title": "Alert on card failures", "owner": "Ann",
                                        "due_date": created[1]["due_date"], "status": "open"}),
            ("action_item", "status", "done"),
            ("postmortem", "root_cause", root),
            ("postmortem", "status", "completed"),
            ("action_item", "status", "in_progress"),
        ]

        # "None" is an explicit answer too.
        other_url = f"/v1/postmortems/{other}"
        for step in ({"status": "in_review"},
                     {"root_cause": {"category": "product_defect", "text": "bug"},
                      "no_action_items": True, "status": "completed"}):
            answer = await svc.client.patch(other_url, json=step, headers=alice)
            assert answer.status_code == 200, answer.text

        # The survey: a genuine link once; forged, expired, reused and bad input refused.
        survey = f"/v1/surveys/{a}"
        good = tokens.sign(SECRET, "survey", a, utcnow() + timedelta(days=7))
        anonymous = httpx.AsyncClient(base_url=svc.base_url, timeout=10)
        try:
            for params, json_body, status in (
                ({"token": good}, {"score": 6}, 422),
                ({}, {"score": 4}, 422),
                ({"token": tokens.sign(SECRET, "survey", b, utcnow() + timedelta(days=7))},
                 {"score": 4}, 403),
                ({"token": tokens.sign("guessed", "survey", a, utcnow() + timedelta(days=7))},
                 {"score": 4}, 403),
                ({"token": "garbage"}, {"score": 4}, 403),
                ({"token": tokens.sign(SECRET, "survey", a, utcnow() - timedelta(seconds=5))},
                 {"score": 4}, 410),
                ({"token": good}, {"score": 4, "comment": "Slow, then great."}, 201),
                ({"token": good}, {"score": 1}, 409),
            ):
                answer = await anonymous.post(survey, params=params, json=json_body)
                assert answer.status_code == status, (params, answer.text)
                if status != 201:
                    assert answer.headers["content-type"] == "application/problem+json"
        finally:
            await anonymous.aclose()
        assert (await current())["survey"]["score"] == 4

        records = await read_topic(env.broker.bootstrap, f"{env.prefix}postmortems", count=5)
        events = [json.loads(r.value) for r in records]
        completed = [e["data"] for e in events if e["type"] == "postmortem.completed"]
        assert sorted((c["reviewer"], c["root_cause_category"]) for c in completed) == [
            ("alice", "process"), ("alice", "product_defect")]
        surveyed = [e for e in events if e["type"] == "survey.submitted"]
        assert [(e["subject"], e["data"]["score"]) for e in surveyed] == [(a, 4)]
