"""RFC 9457 problem details for every error a client can see.

Validation errors name each offending field (``body.customer.email``) and say why, so a
frontend can put the message next to the field. Unexpected errors answer a bare 500
problem without internals; the details go to the log with the request id.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise from service code to answer a problem: the one way services report errors."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.headers = headers or {}
        self.status = status
        self.title = title
        self.detail = detail
        self.extensions = extensions


def problem_response(
    request: Request, status: int, title: str, detail: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field(err.get("loc", ())), "message": err.get("msg", "invalid"),
         "type": err.get("type")}
        for err in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
    return problem_response(
        request, 422, "Request validation failed", detail, errors=errors
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    from http import HTTPStatus

    title = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    response = problem_response(request, exc.status_code, title, detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed(request))
    return response


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed(request: Request) -> list[str]:
    """Every method some route serves at the request's path (RFC 9110: a 405 lists them
    in ``Allow``). Starlette's 405 names only the methods of the first route whose path
    matched: ``Allow: GET`` for a collection that also takes POST."""
    routes = request.app.router.routes
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                   for route in routes)]


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    response = problem_response(request, exc.status, exc.title, exc.detail, **exc.extensions)
    response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    from escalator.shared.consumer import is_infrastructure_error

    if is_infrastructure_error(exc):
        # The database restarting is not the client's fault nor a bug: tell it to retry
        # (the transaction rolled back, so the retry cannot apply anything twice).
        log.warning("dependency unavailable on %s %s: %s", request.method, request.url.path,
                    type(exc).__name__)
        response = problem_response(request, 503, "Service Unavailable",
                                    "A dependency is unavailable; retry shortly.")
        response.headers["Retry-After"] = "1"
        return response
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "Internal Server Error",
                            "The error was logged with this request id.")


async def reject_nul(request: Request) -> None:
    """Refuse NUL characters in any text a client sends, naming where they are.

    PostgreSQL text cannot hold U+0000, so without this a NUL in any field turned into a
    500 at INSERT time. Checking here, once for every route, beats a validator on each
    of the services' string fields. The JSON body is only walked when its raw bytes
    contain an escaped NUL, so ordinary requests pay a substring search.
    """
    errors: list[dict[str, Any]] = []
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            errors.append(_nul_error(("query", name.replace("\x00", ""))))
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            errors.append(_nul_error(("path", name)))
    if request.method in {"POST", "PUT", "PATCH"} and "json" in request.headers.get(
        "content-type", ""
    ):
        body = await request.body()
        if b"\\u0000" in body:
            try:
                document = json.loads(body)
            except ValueError:
                document = None  # FastAPI answers the malformed body itself
            errors.extend(_nul_error(("body", *loc)) for loc in _nul_locations(document))
    if errors:
        raise RequestValidationError(errors)


def _nul_error(loc: tuple[Any, ...]) -> dict[str, Any]:
    return {"loc": loc, "msg": "must not contain NUL (U+0000) characters", "type": "string_nul"}


def _nul_locations(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [at] if "\x00" in value else []
    if isinstance(value, dict):
        found = [at + (key,) for key in value if "\x00" in key]
        for key, item in value.items():
            found += _nul_locations(item, at + (key,))
        return found
    if isinstance(value, list):
        return [loc for index, item in enumerate(value)
                for loc in _nul_locations(item, at + (index,))]
    return []


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(Exception, _unexpected)
    _document(app)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; validation errors list each field.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"},
                           "type": {"type": ["string", "null"]}},
        }},
    },
    "additionalProperties": True,
}


def _document(app: FastAPI) -> None:
    """Make the OpenAPI tell the truth about errors.

    FastAPI documents its own 422 body as ``application/json``; ours is problem+json, and
    any operation can also answer 401, 403, 404, 409 or 413. Clients generated from the
    spec (and schemathesis) must see the real shape, so every operation gets the Problem
    schema for 422 and as its ``default`` response.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = PROBLEM_SCHEMA
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                # HTML pages answer people with an HTML error page, and malformed
                # requests (before the page runs) with problem+json like the rest.
                pages = any("text/html" in r.get("content", {}) for r in responses.values())
                content = ({**problem, "text/html": {"schema": {"type": "string"}}}
                           if pages else problem)
                if "422" in responses:
                    responses["422"] = {"description": "Request validation failed",
                                        "content": content}
                responses.setdefault("default", {"description": "Problem details",
                                                 "content": content})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
