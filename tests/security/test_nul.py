"""NUL characters anywhere in a request are a named 422, never a 500 from PostgreSQL."""

from __future__ import annotations

import httpx
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from escalator.shared import problems


class Visitor(BaseModel):
    name: str
    tags: list[str] = []


def app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(problems.reject_nul)])
    problems.install(app)

    @app.post("/v1/things/{thing_id}")
    async def post(thing_id: str, visitor: Visitor, q: str = "") -> dict[str, str]:
        return {"ok": thing_id}

    return app


async def call(path: str, body: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, content=body,
                                 headers={"content-type": "application/json"})


async def test_nul_in_a_nested_body_field_is_named() -> None:
    answer = await call("/v1/things/a", '{"name": "ok", "tags": ["x", "p\\u0000q"]}')
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["body.tags.1"]


async def test_nul_in_query_and_path_are_named() -> None:
    answer = await call("/v1/things/a%00b?q=x%00", '{"name": "ok"}')
    assert answer.status_code == 422
    assert {e["field"] for e in answer.json()["errors"]} == {"query.q", "path.thing_id"}


async def test_clean_request_and_escaped_backslash_pass() -> None:
    answer = await call("/v1/things/a", '{"name": "C:\\\\u0000 is a path, not a NUL"}')
    assert answer.status_code == 200, answer.text
