"""Events ingest publishes on ``tickets``: the ticket as it is after each change."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from escalator.shared.events.base import TICKETS, EventData, Severity, TicketStatus


class Contact(BaseModel):
    """A person a notifier may need to reach, carried in the event (no lookups)."""

    model_config = ConfigDict(frozen=True)

    name: str
    email: str
    phone: str | None = None
    timezone: str | None = Field(default=None, description="IANA zone, for working hours")
    language: str | None = None


class Customer(BaseModel):
    """The customer as ingest matched them.

    ``email`` is checked in full (``EmailStr``) where it enters, at ingest's API, channels
    and directory; in an event only its shape is: every consumer parses every ticket
    event, and the full check (IDNA, deliverable form) cost 42 µs each, a tenth of a
    routing decision, to re-prove what ingest already proved."""

    model_config = ConfigDict(frozen=True)

    email: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(min_length=1, max_length=200)
    tier: str = "standard"
    account_id: str | None = None
    phone: str | None = None
    language: str | None = Field(default=None, description="BCP 47 tag, e.g. pt, el")
    csm: Contact | None = Field(default=None, description="Customer success manager")
    account_executive: Contact | None = None
    executive_sponsor: Contact | None = Field(
        default=None, description="Set for accounts in the executive sponsorship program"
    )


class TicketSnapshot(EventData):
    """The ticket as ingest holds it after the change the event reports."""

    external_id: str
    channel: str
    subject: str
    description: str
    severity: Severity
    status: TicketStatus
    category: str | None = None
    customer: Customer
    created_at: AwareDatetime
    updated_at: AwareDatetime
    language: str = "en"
    executive: bool = Field(default=False, description="Cancellation or legal threat")
    severity_reason: str | None = Field(
        default=None, description="The explicit value or the rule that set the severity"
    )
    parent_id: str | None = Field(default=None, description="Parent incident, when linked")
    assignee_id: str | None = None


class TicketCreated(TicketSnapshot):
    event_type = "ticket.created"
    topic = TICKETS


class TicketUpdated(TicketSnapshot):
    event_type = "ticket.updated"
    topic = TICKETS


class TicketAcknowledged(TicketSnapshot):
    event_type = "ticket.acknowledged"
    topic = TICKETS


class TicketResolved(TicketSnapshot):
    event_type = "ticket.resolved"
    topic = TICKETS


class TicketClosed(TicketSnapshot):
    event_type = "ticket.closed"
    topic = TICKETS


class Comment(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    author_type: Literal["agent", "customer", "system"]
    author: str
    public: bool
    body: str
    created_at: AwareDatetime


class TicketCommented(TicketSnapshot):
    event_type = "ticket.commented"
    topic = TICKETS

    comment: Comment


class TicketCustomerReplied(TicketSnapshot):
    """The customer wrote on the ticket (a thread follow-up or a portal reply)."""

    event_type = "ticket.customer_replied"
    topic = TICKETS

    comment: Comment


class TicketWaitingOnCustomer(TicketSnapshot):
    event_type = "ticket.waiting_on_customer"
    topic = TICKETS


class TicketReopened(TicketSnapshot):
    event_type = "ticket.reopened"
    topic = TICKETS


class TicketLinked(TicketSnapshot):
    """The ticket became a child of the incident ``parent_id``."""

    event_type = "ticket.linked"
    topic = TICKETS


class TicketEscalationRequested(TicketSnapshot):
    """Someone asks for the ticket to move up: a customer wanting a manager, a chatbot
    handing off to a human, or a cancellation/legal threat (``kind="executive"``)."""

    event_type = "ticket.escalation_requested"
    topic = TICKETS

    kind: Literal["hierarchical", "executive"]
    requested_by: Literal["customer", "chatbot", "agent", "rules"]
    reason: str
