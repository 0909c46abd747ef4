"""Signed, expiring tokens for links given to customers, who have no API key.

The notifier puts a survey link in the resolution message; the postmortem service
accepts the survey only with a token for that ticket that it can verify with the same
secret (``ESCALATOR_SURVEY_SECRET``) and that has not expired. Format:
``<expires unix>.<hex hmac-sha256 of "<purpose>:<subject>:<expires>">``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from escalator.shared.events import utcnow


def sign(secret: str, purpose: str, subject: str, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    return f"{expires}.{_mac(secret, purpose, subject, expires)}"


def verify(secret: str, purpose: str, subject: str, token: str, *, now: datetime | None = None
           ) -> bool:
    """True for an unexpired token minted for exactly this purpose and subject."""
    expires_text, _, mac = token.partition(".")
    if not expires_text.isdigit() or not mac:
        return False
    expires = int(expires_text)
    if expires < int((now or utcnow()).timestamp()):
        return False
    return hmac.compare_digest(mac, _mac(secret, purpose, subject, expires))


def _mac(secret: str, purpose: str, subject: str, expires: int) -> str:
    message = f"{purpose}:{subject}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
