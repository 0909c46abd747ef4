"""``Idempotency-Key`` on creates: a retried request gets the first answer, creates nothing.

The answer is stored in the same transaction as what the request created, so either
both exist or neither does. The same key with a different body is a client bug: 422.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.ingest.models import IdempotentRequest
from escalator.shared.events import utcnow
from escalator.shared.problems import Problem

HEADER = "Idempotency-Key"


def _scope(request: Request, key: str) -> str:
    return f"{request.method} {request.url.path} {key}"[:300]


async def _fingerprint(request: Request) -> str:
    return hashlib.sha256(await request.body()).hexdigest()


async def replay(session: AsyncSession, request: Request) -> JSONResponse | None:
    key = request.headers.get(HEADER)
    if not key:
        return None
    if len(key) > 200:
        raise Problem(422, "Unprocessable Content", f"{HEADER} longer than 200 characters",
                      errors=[{"field": f"header.{HEADER}", "message": "too long",
                               "type": "value_error"}])
    stored = await session.get(IdempotentRequest, _scope(request, key))
    if stored is None:
        return None
    if stored.fingerprint != await _fingerprint(request):
        raise Problem(422, "Unprocessable Content", f"{HEADER} was used with another body",
                      errors=[{"field": f"header.{HEADER}", "message": "reused with another "
                               "body", "type": "value_error"}])
    return JSONResponse(stored.body, status_code=stored.status_code,
                        headers={"Idempotent-Replayed": "true"})


async def remember(session: AsyncSession, request: Request, status_code: int,
                   body: dict[str, Any]) -> None:
    key = request.headers.get(HEADER)
    if not key:
        return
    row = IdempotentRequest(key=_scope(request, key), fingerprint=await _fingerprint(request),
                            status_code=status_code, body=body, created_at=utcnow())
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise Problem(409, "Conflict", f"a request with this {HEADER} is in progress; retry",
                      headers={"Retry-After": "1"}) from exc
