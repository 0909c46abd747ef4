"""Request and response bodies of the ingest API."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic.networks import import_email_validator, validate_email

from escalator.shared.events import Customer, Severity, TicketStatus

TicketState = Literal["new", "assigned", "acknowledged", "waiting_on_customer", "resolved",
                      "closed"]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


#: Account ids become directory keys and URL path segments, so every way in (YAML, REST,
#: channel events naming an unknown account) accepts the same safe shape.
AccountId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                             max_length=100,
                                             pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


import_email_validator()  # as EmailStr does: a clear error if the extra is missing


@functools.lru_cache(maxsize=8192)
def _email(value: str) -> str:
    return validate_email(value)[1]


#: ``EmailStr``'s check and normalisation, remembered per address: the check took 20 µs,
#: a fifth of a single event's parse, and a help desk hears from the same senders again
#: and again (a batch of a thousand events often from a few dozen). Refusals are not
#: remembered (the cache keeps only results), so each bad address gets its own error.
Email = Annotated[str, AfterValidator(_email),
                  WithJsonSchema({"type": "string", "format": "email"})]


Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()-]{5,30}$")]


class ApiCustomer(Customer):
    email: Email
    account_id: AccountId | None = None
    phone: Phone | None = None


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
    customer: ApiCustomer


class IngestResult(BaseModel):
    ticket_id: str | None = Field(description="Null when the event concerned no open ticket "
                                  "(a monitoring resolve for an alert never seen)")
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
    state: TicketState = Field(description="The help-desk lifecycle state; `status` is its "
                               "coarse form used in events")
    language: str
    executive: bool
    severity_reason: str | None = Field(description="`explicit`, `rule:<id>`, "
                                        "`keyword:<concern>:<lang>:<phrase>` or `default`")
    department: str | None
    parent_id: str | None
    assignee_id: str | None
    customer_account_id: str | None
    customer: Customer | None = Field(validation_alias="customer_data")
    details: dict[str, Any] | None
    reopen_count: int


class TicketPage(BaseModel):
    items: list[TicketOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; "
                                    "null on the last page.")


class LifecycleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Text | None = Field(default=None, max_length=10_000)


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"author_type": "agent", "author": "alice", "public": False,
         "body": "Payments gateway logs show 502s from the acquirer since 09:08."},
        {"author_type": "customer", "author": "ops@acme.example", "public": True,
         "body": "Still failing for us, order 48213 just bounced."},
    ]})

    author_type: Literal["agent", "customer"]
    author: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                             max_length=320)]
    public: bool = True
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=100_000)]


class CommentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    ticket_id: str
    author_type: str
    author: str
    public: bool
    body: str
    created_at: datetime


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"parent_id": "5b0c2f7e-3a61-4f55-9d1e-2f6f1f0b9a41"}]})

    parent_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                max_length=36)] = Field(
        description="The incident ticket this one is affected by")
