"""Opaque keyset cursors: stable under inserts, cheap at any depth (no OFFSET scans)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from escalator.shared.problems import Problem


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != parts:
            raise ValueError("wrong shape")
        return [str(v) for v in values]
    except (ValueError, TypeError) as exc:
        raise _invalid() from exc


async def newest_first(
    session: AsyncSession,
    query: Select[Any],
    *,
    created: InstrumentedAttribute[datetime],
    key: InstrumentedAttribute[str],
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """One page of ``query``'s rows, newest first, keyset-paginated on (created, key).

    The cursor carries the last row's position, so pages stay consistent while rows are
    being added and page N costs the same as page 1.
    """
    query = query.order_by(created.desc(), key.desc()).limit(limit + 1)
    if cursor:
        raw_time, last_key = decode_cursor(cursor, 2)
        at = _aware(raw_time)
        query = query.where(or_(created < at, and_(created == at, key < last_key)))
    rows = list((await session.scalars(query)).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, created.key).isoformat(), getattr(last, key.key))


def _aware(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise _invalid()
    return at


def _invalid() -> Problem:
    return Problem(400, "Bad Request", "query.cursor: not a cursor this API issued",
                   errors=[{"field": "query.cursor", "message": "invalid cursor"}])
