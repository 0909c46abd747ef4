"""Webhook signatures: ``X-Escalator-Signature: t=<unix>,v1=<hex>``.

``v1`` is HMAC-SHA256 over ``"<t>.<raw body>"`` with the shared secret. Binding the
timestamp into the MAC lets a receiver refuse replays older than its tolerance; the
``v1`` label leaves room for another scheme (issue 6: Standard Webhooks) beside it.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Escalator-Signature"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver runs: a valid MAC and a timestamp within ``tolerance`` seconds."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp).rsplit("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
