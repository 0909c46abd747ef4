"""Opaque keyset cursors: stable under inserts, cheap at any depth (no OFFSET scans)."""

from __future__ import annotations

import base64
import json
from typing import Any

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
        raise Problem(400, "Bad Request", "query.cursor: not a cursor this API issued",
                      errors=[{"field": "query.cursor", "message": "invalid cursor"}]) from exc
