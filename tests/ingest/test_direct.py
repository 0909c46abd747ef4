"""The JSON channels' fast path: it must accept exactly what the declared route accepts,
and leave everything unusual to FastAPI, so answers do not depend on which path ran."""

from __future__ import annotations

import json
from typing import Any

import pytest

from escalator.ingest.channels_api import JSON_CHANNELS
from escalator.ingest.main import SPEC
from tests.ingest.helpers import api_event, fixture_bytes, ingest_settings
from tests.support import Env, running

FIXTURES = {"chat": "chat_handoff.json", "phone": "phone_call.json",
            "portal": "portal_submission.json", "social": "social_mention.json"}


def _bodies(channel: str) -> list[bytes]:
    model, _ = JSON_CHANNELS[channel]
    examples: list[Any] = (model.model_config.get("json_schema_extra") or {}).get(
        "examples", [])  # type: ignore[union-attr]
    bodies = [json.dumps(example).encode() for example in examples]
    if channel in FIXTURES:
        bodies.append(fixture_bytes(FIXTURES[channel]))
    return bodies


@pytest.mark.parametrize("channel", sorted(JSON_CHANNELS))
def test_json_mode_validates_as_the_route_does(channel: str) -> None:
    """The fast path validates bytes (pydantic's JSON mode), the route a parsed document
    (Python mode): on every realistic body the two give the same event."""
    model, _ = JSON_CHANNELS[channel]
    bodies = _bodies(channel)
    assert bodies, f"{channel} has neither an OpenAPI example nor a fixture"
    for raw in bodies:
        assert model.model_validate_json(raw) == model.model_validate(json.loads(raw))


async def test_what_the_fast_path_declines_is_answered_by_the_route(env: Env) -> None:
    async with running(SPEC, ingest_settings(env)) as svc:
        url = "/v1/channels/api/events"
        plain = await svc.client.post(url, json=api_event(external_id="direct-1"))
        assert plain.status_code == 202, plain.text
        # An escaped NUL: the app-wide check names the field, nothing is stored.
        raw = json.dumps(api_event(external_id="direct-2", description="a\u0000b")).encode()
        nul = await svc.client.post(url, content=raw,
                                    headers={"content-type": "application/json"})
        assert nul.status_code == 422
        assert [e["field"] for e in nul.json()["errors"]] == ["body.description"]
        # Invalid: FastAPI's one problem shape, naming the field.
        bad = await svc.client.post(url, json=api_event(external_id="direct-3",
                                                        severity="apocalyptic"))
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in bad.json()["errors"]] == ["body.severity"]
        # A query string and a JSON content type with parameters still store the event.
        spaced = await svc.client.post(f"{url}?source=crm", content=json.dumps(
            api_event(external_id="direct-4")).encode(),
            headers={"content-type": "application/json; charset=utf-8"})
        assert spaced.status_code == 202, spaced.text
        listed = await svc.client.get("/v1/tickets", params={"limit": 10})
        assert sorted(t["external_id"] for t in listed.json()["items"]) == [
            "direct-1", "direct-4"]
