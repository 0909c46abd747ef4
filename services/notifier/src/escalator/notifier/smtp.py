"""Email over SMTP with aiosmtplib: one connection per message, bounded by a timeout.

The stored payload holds the rendered subject and body; the message id derives from
the delivery id, so a receiver (or a mail filter) can recognise the rare resend after
a lease expiry as the same message.
"""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import formataddr, formatdate

import aiosmtplib

from escalator.notifier.settings import NotifierSettings


class EmailError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def build(settings: NotifierSettings, delivery_id: str, ticket_id: str, payload: str
          ) -> EmailMessage:
    data = json.loads(payload)
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = formataddr((data.get("name") or "", data["to"]))
    message["Subject"] = data["subject"]
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{delivery_id}@escalator>"
    message["X-Escalator-Ticket"] = ticket_id
    message.set_content(data["body"])
    # After set_content, which replaces every Content-* header.
    message["Content-Language"] = data.get("language") or "en"
    return message


async def send(settings: NotifierSettings, message: EmailMessage) -> None:
    """Send one message; SMTP 4xx and network trouble are retryable, 5xx are not."""
    if settings.smtp_host is None:
        raise EmailError("email channel not configured (ESCALATOR_SMTP_HOST)", retryable=False)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            message, hostname=settings.smtp_host, port=settings.smtp_port,
            username=settings.smtp_username, password=password,
            use_tls=settings.smtp_security == "tls",
            start_tls=settings.smtp_security == "starttls",
            timeout=settings.smtp_timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        raise EmailError(f"recipient refused: {exc.recipients[0].message}"[:1000],
                         retryable=all(400 <= c < 500 for c in codes)) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise EmailError(f"SMTP {exc.code}: {exc.message}"[:1000],
                         retryable=400 <= exc.code < 500) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise EmailError(f"{type(exc).__name__}: {exc}"[:1000], retryable=True) from exc

