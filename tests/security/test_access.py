"""Access matrix: every ``/v1`` endpoint of every service refuses a missing key, a wrong
key and a key without its scope; health, readiness, metrics and OpenAPI stay open; and
no secret shows up in an error body or a log line.

Endpoints are read from each service's own OpenAPI, so a new endpoint is covered the
moment it exists.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from escalator.shared.app import ServiceSpec
from escalator.shared.settings import ApiKeySpec, ServiceSettings, hash_api_key
from tests.support import API_KEY, Broker, Env, new_prefix, running

NO_SCOPE_KEY = "key-with-no-useful-scope"
WRONG_KEY = "not-a-key-anyone-was-given"

#: Endpoints customers or third parties reach without an API key, and what guards them.
OTHER_AUTH: dict[tuple[str, str], str] = {
    ("POST", "/v1/surveys/{ticket_id}"): "signed survey token",
    ("POST", "/v1/channels/monitoring/pagerduty"): "PagerDuty routing_key (an integration key)",
}


def specs() -> list[tuple[ServiceSpec, type[ServiceSettings]]]:
    from escalator.ingest.main import SPEC as INGEST
    from escalator.ingest.settings import IngestSettings
    from escalator.notifier.main import SPEC as NOTIFIER
    from escalator.notifier.settings import NotifierSettings
    from escalator.postmortem.main import SPEC as POSTMORTEM
    from escalator.postmortem.settings import PostmortemSettings
    from escalator.router.main import SPEC as ROUTER
    from escalator.router.settings import RouterSettings
    from escalator.sla_timer.main import SPEC as SLA
    from escalator.sla_timer.settings import SlaTimerSettings

    return [(INGEST, IngestSettings), (ROUTER, RouterSettings), (SLA, SlaTimerSettings),
            (NOTIFIER, NotifierSettings), (POSTMORTEM, PostmortemSettings)]


def endpoints(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in openapi["paths"].items()
            if path.startswith("/v1/") for method in item
            if method in {"get", "post", "put", "patch", "delete"}]


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


@pytest.mark.parametrize("index", range(5), ids=["ingest", "router", "sla-timer", "notifier",
                                                 "postmortem"])
async def test_every_v1_endpoint_needs_a_key_with_its_scope(
    index: int, broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Auth does not depend on the database backend: SQLite is enough.
    env = Env(broker=broker, backend="sqlite", tmp_path=tmp_path, prefix=new_prefix())
    spec, settings_cls = specs()[index]
    no_scope = ApiKeySpec(name="no-scope", sha256=hash_api_key(NO_SCOPE_KEY), scopes=["none"])
    settings = env.settings(settings_cls, api_keys=[no_scope])
    caplog.set_level(logging.DEBUG)
    async with running(spec, settings) as svc:
        openapi = (await svc.client.get("/openapi.json", headers={"Authorization": ""})).json()
        routes = endpoints(openapi)
        assert routes, f"{spec.name} has no /v1 endpoints"
        for method, path in routes:
            url = concrete(path)
            anonymous = await svc.client.request(method, url, headers={"Authorization": ""},
                                                 json={})
            if (method, path) in OTHER_AUTH:
                assert anonymous.status_code in {400, 401, 403, 404, 422}, (method, path)
                continue
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            assert anonymous.headers["content-type"] == "application/problem+json"
            wrong = await svc.client.request(
                method, url, headers={"Authorization": f"Bearer {WRONG_KEY}"}, json={})
            assert wrong.status_code == 401, (method, path)
            unscoped = await svc.client.request(
                method, url, headers={"Authorization": f"Bearer {NO_SCOPE_KEY}"}, json={})
            assert unscoped.status_code == 403, (method, path, unscoped.text)
            for response in (anonymous, wrong, unscoped):
                assert WRONG_KEY not in response.text and NO_SCOPE_KEY not in response.text
                assert API_KEY not in response.text
        for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            response = await svc.client.get(open_path, headers={"Authorization": ""})
            assert response.status_code == 200, open_path
    logged = "\n".join(record.getMessage() + json.dumps(record.__dict__, default=str)
                       for record in caplog.records)
    for secret in (API_KEY, WRONG_KEY, NO_SCOPE_KEY):
        assert secret not in logged


def test_secrets_are_masked_in_settings(tmp_path: Path) -> None:
    settings = ServiceSettings(api_key=API_KEY, database_url=f"sqlite+aiosqlite:///{tmp_path}/x")
    assert API_KEY not in repr(settings) and API_KEY not in str(settings.model_dump())
