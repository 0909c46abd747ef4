"""What runs before a channel body is parsed: size limit, authentication, signatures.

Webhook signatures follow the scheme payment and chat platforms use: the sender puts
``Escalator-Signature: t=<unix seconds>,v1=<hex>`` on the request, where ``v1`` is
HMAC-SHA256 over ``"<t>." + raw body`` with the channel's secret. Several ``v1`` values
may be sent while a secret rotates; any one matching is enough. Comparison is
constant-time. A timestamp outside the tolerance window (5 minutes) is refused as
expired, and the same signed bytes (timestamp and body) a second time inside it are
refused as a replay: what was taken is recorded in the database, so every replica sees
it. Senders that retry sign each attempt afresh, as Stripe's and Standard Webhooks' do,
so a byte-identical request is never a legitimate retry. A channel with secrets
configured must be signed; other channels take an API key.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import SecretStr
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from escalator.ingest import metrics
from escalator.ingest.models import SeenSignature
from escalator.ingest.settings import IngestSettings
from escalator.shared.app import get_runtime
from escalator.shared.events import utcnow
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
           tolerance: int, now: float | None = None) -> int:
    """The signed timestamp, once the header proves ``body`` came from a secret holder."""
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
    return timestamp


#: How often the records of signatures past the window are deleted (seconds).
PRUNE_EVERY = 60.0


async def take_signature(request: Request, channel: str, timestamp: int, body: bytes,
                         tolerance: int) -> None:
    """Record the signed request as taken, or refuse it as a replay (401).

    Keyed by what was signed, not by the signature: during a rotation the same request
    signed with the other secret is the same request.
    """
    runtime = get_runtime(request)
    digest = hashlib.sha256(f"{channel}\0{timestamp}.".encode() + body).hexdigest()
    now = utcnow()
    try:
        async with runtime.sessionmaker() as session, session.begin():
            session.add(SeenSignature(key=digest, seen_at=now))
            await session.flush()
            last = runtime.extras.get("signatures_pruned", 0.0)
            if time.monotonic() - last >= PRUNE_EVERY:
                runtime.extras["signatures_pruned"] = time.monotonic()
                # Both clocks may be off by the tolerance: keep twice the window.
                await session.execute(delete(SeenSignature).where(
                    SeenSignature.seen_at < now - timedelta(seconds=2 * tolerance)))
    except IntegrityError:
        metrics.WEBHOOK_REFUSED.labels(channel, "replayed").inc()
        raise _unauthorized(f"{SIGNATURE_HEADER} was already used: a signed request is "
                            "taken once (sign each attempt anew)") from None


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
    # The scope's path, not ``request.url``: building the URL object cost more than the
    # API-key check on every channel request.
    parts = request.scope["path"].split("/")
    return parts[3] if len(parts) > 3 else ""


#: A route's fast path: given the request and its checked raw body, the response, or
#: None to leave the request to FastAPI's own parsing (see ``ChannelRoute``).
Direct = Callable[[Request, bytes], Coroutine[Any, Any, Response | None]]


class ChannelRoute(APIRoute):
    """Channel routes: limit, then authenticate (signature or API key), then parse.

    An endpoint may carry a ``direct`` fast path (an attribute of the function). It gets
    the body already read here and answers ordinary requests without FastAPI's
    dependency and body machinery, which cost ingest more CPU per request than storing
    the event did; whatever it declines (returns None for) goes through the route as
    declared, so every refusal keeps the one problem+json shape and OpenAPI is unchanged.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        direct: Direct | None = getattr(self.endpoint, "direct", None)

        async def guarded(request: Request) -> Response:
            settings: IngestSettings = request.app.state.runtime.settings
            channel = channel_of(request)
            path: str = request.scope["path"]
            limit = settings.max_email_bytes if channel == "email" else settings.max_body_bytes
            if path.endswith(":batch"):
                limit = settings.max_body_bytes * 16
            body = await read_limited(request, limit)
            secrets = settings.webhook_secrets.get(channel)
            if path.endswith("/pagerduty"):
                pass  # authenticated by its routing_key, checked after parsing
            elif secrets:
                tolerance = settings.webhook_tolerance_seconds
                try:
                    signed_at = verify(request.headers.get(SIGNATURE_HEADER), body, secrets,
                                       tolerance=tolerance)
                except Problem:
                    metrics.WEBHOOK_REFUSED.labels(channel, "signature").inc()
                    raise
                await take_signature(request, channel, signed_at, body, tolerance)
            else:
                check_api_key(request)
            if direct is not None and (response := await direct(request, body)) is not None:
                return response
            return await handler(request)

        return guarded
