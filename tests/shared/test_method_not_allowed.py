"""A 405 names every method the path takes (RFC 9110 ``Allow``), not only those of the
first route whose path matched, and is problem+json like every other refusal."""

from __future__ import annotations

import httpx
import pytest

from escalator.shared.app import create_app
from escalator.sla_timer.main import SPEC
from escalator.sla_timer.settings import SlaTimerSettings


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("OPTIONS", "/v1/calendars", "GET, POST"),
    ("PATCH", "/v1/calendars/business", "GET, PUT, DELETE"),
    ("POST", "/healthz", "GET"),
])
async def test_method_not_allowed_lists_every_method_of_the_path(
        method: str, path: str, allowed: str) -> None:
    app = create_app(SPEC, SlaTimerSettings(env="test"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert answer.headers["content-type"] == "application/problem+json"
