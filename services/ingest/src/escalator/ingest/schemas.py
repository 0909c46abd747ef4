"""Request and response bodies of the ingest API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from escalator.shared.events import Customer, Severity, TicketStatus

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class ApiChannelEvent(BaseModel):
    """The generic JSON form: what a script or an integration posts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "external_id": "crm-48213",
                    "subject": "Checkout fails with error 502",
                    "description": "Since 09:10 UTC every card payment fails at checkout.",
                    "severity": "high",
                    "category": "payments",
                    "customer": {"email": "ops@acme.example", "name": "Acme Ops",
                                 "tier": "enterprise"},
                }
            ]
        },
    )

    external_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                   max_length=200)] = Field(
        description="The sender's id for this conversation; the same id again updates "
        "the same ticket."
    )
    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=500)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                  max_length=100_000)]
    severity: Severity
    category: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                               max_length=100)] | None = None
    customer: Customer


class IngestResult(BaseModel):
    ticket_id: str
    created: bool


class TicketOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    channel: str
    external_id: str
    subject: str
    description: str
    severity: Severity
    status: TicketStatus
    category: str | None
    customer_email: str
    customer_name: str
    customer_tier: str
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None


class TicketPage(BaseModel):
    items: list[TicketOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; "
                                    "null on the last page.")


class LifecycleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Text | None = Field(default=None, max_length=10_000)
