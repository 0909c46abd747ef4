"""Response bodies of the notifier API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from escalator.notifier.models import DeliveryStatus


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    ticket_id: str
    about_event_id: str
    about_event_type: str
    about_event_time: datetime | None = Field(
        description="When the event happened (null for digests and older rows).")
    channel: str
    target_id: str
    recipient: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When the next attempt is due "
                                             "(null once sent, failed or cancelled).")
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    payload: dict[str, Any] = Field(description="The JSON body sent to the recipient.")

    @field_validator("payload", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; "
                                    "null on the last page.")


class WebhookTargetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class WebhookTargetList(BaseModel):
    items: list[WebhookTargetOut]
