"""Webhook signatures: ``X-Escalator-Signature: t=<unix>,v1=<hex>``.

``v1`` is HMAC-SHA256 over ``"<t>.<raw body>"`` with the shared secret. Binding the
timestamp into the MAC lets a receiver refuse replays older than its tolerance; the
``v1`` label leaves room for another scheme; Standard Webhooks 1.0 headers
(``standard_headers``) are sent beside it when their secrets are configured.
"""

from __future__ import annotations

import base64
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


def standard_headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes
                     ) -> dict[str, str]:
    """Standard Webhooks 1.0 headers: one ``v1,<base64 HMAC-SHA256>`` per secret over
    ``"<id>.<timestamp>.<body>"``, space-separated, so receivers verify with any
    implementation of the specification and secrets rotate without a gap."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    signatures = [
        "v1," + base64.b64encode(hmac.new(_key(s), content, hashlib.sha256).digest()).decode()
        for s in secrets
    ]
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signatures)}


def _key(secret: str) -> bytes:
    """The key bytes: ``whsec_``-prefixed secrets are base64, as the specification says."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()
