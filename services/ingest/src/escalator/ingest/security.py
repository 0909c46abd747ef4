"""What runs before a channel body is parsed: size limit, authentication, signatures.

Webhook signatures follow the scheme payment and chat platforms use: the sender puts
``Escalator-Signature: t=<unix seconds>,v1=<hex>`` on the request, where ``v1`` is
HMAC-SHA256 over ``"<t>." + raw body`` with the channel's secret. Several ``v1`` values
may be sent while a secret rotates; any one matching is enough. Comparison is
constant-time and a timestamp outside the tolerance window (5 minutes) is a replay.
A channel with secrets configured must be signed; other channels take an API key.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import SecretStr

from escalator.ingest.settings import IngestSettings
from escalator.shared.problems import Problem
from escalator.shared.settings import hash_api_key

SIGNATURE_HEADER = "Escalator-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a sender computes (also used by tests and the benchmark)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def verify(header: str | None, body: bytes, secrets: list[SecretStr], *,
           tolerance: int, now: float | None = None) -> None:
    if not header:
        raise _unauthorized(f"this channel requires the {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value.strip())
    if timestamp is None or not candidates:
        raise _unauthorized(f"{SIGNATURE_HEADER} must be 't=<unix seconds>,v1=<hex>'")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise _unauthorized(f"{SIGNATURE_HEADER} timestamp outside the {tolerance}s window")
    signed = f"{timestamp}.".encode() + body
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.get_secret_value().encode(), signed, hashlib.sha256).hexdigest()
        for candidate in candidates:
            # No early exit: every candidate is compared, so timing says nothing.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise _unauthorized(f"{SIGNATURE_HEADER} does not match")


def _bearer_scopes(request: Request) -> list[str] | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    spec = request.app.state.runtime.api_keys.get(hash_api_key(token.strip()))
    return None if spec is None else list(spec.scopes)


def check_api_key(request: Request, scope: str = "tickets:write") -> None:
    scopes = _bearer_scopes(request)
    if scopes is None:
        raise _unauthorized("send 'Authorization: Bearer <api key>'"
                            if not request.headers.get("authorization") else "unknown API key")
    if scope not in scopes and "admin" not in scopes:
        raise Problem(403, "Forbidden", f"this API key lacks the '{scope}' scope")


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes before reading (or buffering) it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "Content Too Large", f"body exceeds {limit} bytes", limit=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "Content Too Large", f"body exceeds {limit} bytes", limit=limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # noqa: SLF001 - hand the checked body to FastAPI's own parsing
    return body


def channel_of(request: Request) -> str:
    parts = request.url.path.split("/")
    return parts[3] if len(parts) > 3 else ""


class ChannelRoute(APIRoute):
    """Channel routes: limit, then authenticate (signature or API key), then parse."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            settings: IngestSettings = request.app.state.runtime.settings
            channel = channel_of(request)
            limit = settings.max_email_bytes if channel == "email" else settings.max_body_bytes
            if request.url.path.endswith(":batch"):
                limit = settings.max_body_bytes * 16
            body = await read_limited(request, limit)
            secrets = settings.webhook_secrets.get(channel)
            if request.url.path.endswith("/pagerduty"):
                pass  # authenticated by its routing_key, checked after parsing
            elif secrets:
                verify(request.headers.get(SIGNATURE_HEADER), body, secrets,
                       tolerance=settings.webhook_tolerance_seconds)
            else:
                check_api_key(request)
            return await handler(request)

        return guarded
