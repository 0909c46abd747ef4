"""Notifier settings: where webhooks go, how they are signed, and how hard to retry."""

from __future__ import annotations

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

    delivery_max_attempts: int = Field(default=5, ge=1)
    #: First retry delay; each further retry doubles it, up to the cap.
    delivery_backoff_seconds: float = Field(default=2.0, gt=0)
    delivery_backoff_max_seconds: float = Field(default=300.0, gt=0)
    #: How long a claimed delivery is reserved for its sender: a replica that dies
    #: mid-send leaves it to be retried after this.
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    delivery_batch_size: int = Field(default=100, ge=1)
    delivery_concurrency: int = Field(default=20, ge=1)
    #: Longest the dispatcher sleeps when nothing is due and nobody wakes it.
    dispatcher_idle_seconds: float = Field(default=1.0, gt=0)

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
        if self.delivery_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError("delivery_lease_seconds must exceed webhook_timeout_seconds")
        return self
