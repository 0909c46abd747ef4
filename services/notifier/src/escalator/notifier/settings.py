"""Notifier settings: where webhooks go, how they are signed, and how hard to retry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from escalator.shared.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    service_name: str = "notifier"
    port: int = 8004

    #: The default webhook target (id ``default``); more targets come from the YAML file.
    webhook_url: str | None = None
    #: When set, every POST carries ``X-Escalator-Signature: t=<unix>,v1=<hex>``.
    webhook_secret: SecretStr | None = None
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Standard Webhooks 1.0 secrets (``whsec_<base64>``); every POST carries one
    #: ``v1,<base64>`` signature per secret, so a receiver can rotate without a gap.
    webhook_signing_secrets: list[SecretStr] = []
    #: SSRF guard. Hosts (exact, or ``.suffix``) a destination may name; empty = any
    #: public host. Private, loopback and link-local addresses are refused unless their
    #: host or address is listed in ``webhook_private_allowed``. The operator's own
    #: ``ESCALATOR_WEBHOOK_URL`` is trusted as configured.
    webhook_allowed_hosts: list[str] = []
    webhook_private_allowed: list[str] = []

    #: Email over SMTP; without a host, email deliveries fail with a clear error.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    #: ``starttls`` upgrades a plain connection; ``tls`` connects over TLS (port 465).
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_from: str = "Escalator <escalator@localhost>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)

    #: Links in messages; ``{ticket_id}`` and ``{token}`` are filled in.
    ticket_url: str = "http://127.0.0.1:8001/v1/tickets/{ticket_id}"
    survey_url: str = "http://127.0.0.1:8005/pages/surveys/{ticket_id}?token={token}"
    #: Shared with the postmortem service, which verifies the survey token.
    survey_secret: SecretStr | None = None
    survey_link_days: float = Field(default=30.0, gt=0)

    delivery_max_attempts: int = Field(default=5, ge=1)
    #: First retry delay; each further retry doubles it, up to the cap.
    delivery_backoff_seconds: float = Field(default=2.0, gt=0)
    delivery_backoff_max_seconds: float = Field(default=300.0, gt=0)
    #: How long a claimed delivery is reserved for its sender: a replica that dies
    #: mid-send leaves it to be retried after this.
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    #: Circuit breaker: after this many consecutive retryable failures a destination is
    #: paused for ``breaker_pause_seconds`` (its deliveries wait, spending no attempts).
    breaker_failures: int = Field(default=5, ge=1)
    breaker_pause_seconds: float = Field(default=60.0, gt=0)
    delivery_batch_size: int = Field(default=100, ge=1)
    #: Sends in flight at once, over all destinations...
    delivery_concurrency: int = Field(default=20, ge=1)
    #: ...and to any one destination (webhook URL, or the SMTP server), so a slow one
    #: holds at most this many of them while the others keep going.
    delivery_per_destination: int = Field(default=10, ge=1)
    #: Longest the dispatcher sleeps when nothing is due and nobody wakes it.
    dispatcher_idle_seconds: float = Field(default=1.0, gt=0)
    #: Deliveries wait while the consumer has not read every partition up to this close
    #: to the present (a backlog after downtime): read first, so a message about a ticket
    #: resolved meanwhile is cancelled instead of sent.
    delivery_read_lag_seconds: float = Field(default=5.0, gt=0)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> NotifierSettings:
        # A lease shorter than a send would let a second replica resend a delivery that
        # is still in flight.
        if self.delivery_lease_seconds <= max(self.webhook_timeout_seconds,
                                              self.smtp_timeout_seconds):
            raise ValueError("delivery_lease_seconds must exceed webhook_timeout_seconds "
                             "and smtp_timeout_seconds")
        return self
