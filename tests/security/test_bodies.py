"""Hostile bodies: deeply nested and oversized JSON are refused with a problem, before any
model sees them, on every endpoint that takes a body, and the service keeps serving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.security.test_access import concrete, specs
from tests.support import Broker, Env, new_prefix, running

JSON = {"Content-Type": "application/json"}


def bodied(openapi: dict[str, object]) -> list[tuple[str, str]]:
    found = []
    for path, item in openapi["paths"].items():  # type: ignore[attr-defined]
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if path.startswith("/v1/") and "application/json" in content:
                found.append((method.upper(), path))
    return found


@pytest.mark.parametrize("index", range(5), ids=["ingest", "router", "sla-timer", "notifier",
                                                 "postmortem"])
async def test_deep_and_huge_bodies_are_refused(index: int, broker: Broker,
                                                tmp_path: Path) -> None:
    env = Env(broker=broker, backend="sqlite", tmp_path=tmp_path, prefix=new_prefix())
    spec, settings_cls = specs()[index]
    # Small limits keep the oversized body small enough to be sent whole before the
    # refusal closes the connection (a client streaming 20 MB would see the close).
    limits: dict[str, int] = {"max_request_bytes": 65536}
    if spec.name == "ingest":
        limits.update(max_body_bytes=4096, max_email_bytes=8192)
    settings = env.settings(settings_cls, **limits)
    assert settings.request_byte_limit() == 65536
    async with running(spec, settings) as svc:
        openapi = (await svc.client.get("/openapi.json")).json()
        routes = bodied(openapi)
        assert routes or spec.name == "sla-timer", spec.name
        deep = b'{"a":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
        nested = b'{"a":' + b"[" * 200 + b"]" * 200 + b"}"
        huge = b'{"a":"' + b"x" * 100_000 + b'"}'
        for method, path in routes:
            for name, body, expected in (("deep", deep, 400), ("nested", nested, 400),
                                         ("huge", huge, 413)):
                answer = await svc.client.request(method, concrete(path), content=body,
                                                  headers=JSON)
                assert answer.status_code == expected, (name, method, path, answer.text[:300])
                assert answer.headers["content-type"] == "application/problem+json"
        assert (await svc.client.get("/healthz")).status_code == 200


def test_depth_counts_structure_not_strings() -> None:
    from escalator.shared.bodies import json_depth

    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    many = b"[" + b",".join([b"[]"] * 100) + b"]"
    assert json_depth(many) == 2  # many brackets, little depth
    quoted = b'{"text": "' + b"[" * 100 + b'\\" ] {"}'
    assert json_depth(quoted) == 1  # brackets and escaped quotes inside a string
    assert json_depth(b"[" * 40 + b"]" * 40) == 40


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n\u00e9'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(alphabet='[]{}"\\ab'), inner, max_size=4),
    max_leaves=30)


@given(_JSON, st.booleans())
def test_depth_matches_the_parsed_structure(value: object, ascii_only: bool) -> None:
    """Strings full of brackets, quotes and backslashes never count, however escaped."""
    from escalator.shared.bodies import json_depth

    assert json_depth(json.dumps(value, ensure_ascii=ascii_only).encode()) == _depth(value)
