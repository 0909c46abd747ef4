"""Ingest's environment settings (``ESCALATOR_*``); versioned rules live in YAML (config.py)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from escalator.shared.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    service_name: str = "ingest"
    port: int = 8001
    #: Per-channel webhook signing secrets (JSON: ``{"chat": ["new", "old"]}``); a channel
    #: listed here must send a valid ``Escalator-Signature``; several during rotation.
    webhook_secrets: dict[str, list[SecretStr]] = {}
    webhook_tolerance_seconds: int = Field(default=300, ge=1)
    #: PagerDuty Events v2 integration keys accepted as ``routing_key``.
    pagerduty_routing_keys: list[SecretStr] = []
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_email_bytes: int = Field(default=10_485_760, ge=1024)
    max_attachment_bytes: int = Field(default=5_242_880, ge=1)
    smtp_enabled: bool = False
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=0, le=65535)

    def request_byte_limit(self) -> int:
        """Room for the largest channel body: a batch (16 events' worth) or an email."""
        return max(self.max_request_bytes, 16 * self.max_body_bytes, self.max_email_bytes)
