"""Notification rules: which events reach whom, on which channel.

A rule matches an event by kind (its type, or a derived kind such as
``executive_escalation`` and ``incident_update``), severity, customer tier, executive
flag and level reached, and names its recipients by role. Roles resolve from the state
the event carries (holders, the customer and their account team) completed by the
notifier's own projection of tickets, so the notifier never calls another service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from escalator.shared.events import (
    CloudEvent,
    Contact,
    Customer,
    Holder,
    Severity,
    TicketAssigned,
    TicketCommented,
    TicketEscalated,
    TicketEscalationRequested,
    TicketSnapshot,
    TicketUnassignable,
)

EventKind = Literal[
    "ticket.created", "ticket.updated", "ticket.acknowledged", "ticket.assigned",
    "ticket.escalated",
    "ticket.escalation_requested", "executive_escalation", "ticket.unassignable",
    "sla.warning", "sla.breached", "sla.update_due", "ticket.resolved", "ticket.closed",
    "ticket.reopened", "ticket.commented", "ticket.linked", "incident_update",
]
Role = Literal[
    "assignee", "previous_assignee", "supervisor", "csm", "account_executive",
    "executive_sponsor", "executives", "watchers", "customer",
]
Channel = Literal["email", "webhook"]
RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]


class Rule(BaseModel):
    """One rule. Empty filter lists mean "any"; ``None`` flags mean "either"."""

    model_config = ConfigDict(extra="forbid")

    id: RuleId
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True
    events: list[EventKind] = Field(min_length=1)
    severities: list[Severity] = []
    tiers: list[Annotated[str, StringConstraints(min_length=1, max_length=50)]] = []
    executive: bool | None = None
    min_level: int | None = Field(default=None, ge=0, description="Level reached, 0-based")
    recipients: list[Role] = Field(default=[], description="Roles to reach by email")
    channel: Channel = "email"
    #: At most one message per person and ticket in this window; the rest fold into a
    #: digest sent when the window ends.
    throttle_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    target: str | None = Field(default=None, max_length=100,
                               description="Webhook target id, for channel webhook")

    @model_validator(mode="after")
    def _channel_needs(self) -> Rule:
        if self.channel == "webhook" and not self.target:
            raise ValueError("a webhook rule names its target")
        if self.channel == "email" and not self.recipients:
            raise ValueError("an email rule names at least one recipient role")
        return self


@dataclass(frozen=True)
class TicketView:
    """What the notifier remembers of a ticket (its projection), for events that carry
    less than a ticket snapshot (SLA clocks, assignments)."""

    customer: Customer | None = None
    language: str | None = None
    severity: str | None = None
    executive: bool = False
    subject: str | None = None
    level: int | None = None
    assignee: Holder | None = None
    supervisor: Holder | None = None


@dataclass(frozen=True)
class Person:
    """A resolved recipient."""

    role: str
    name: str
    email: str
    language: str
    timezone: str | None
    internal: bool


@dataclass(frozen=True)
class Facts:
    """The attributes rules filter on, read from the event first, the projection second."""

    kinds: frozenset[str]
    severity: str | None
    tier: str | None
    executive: bool
    level: int | None


def facts(event: CloudEvent[Any], view: TicketView, *, is_parent: bool) -> Facts:
    data = event.data
    kinds = {event.type}
    executive = bool(getattr(data, "executive", False)) or view.executive
    if isinstance(data, TicketEscalationRequested) and data.kind == "executive":
        kinds.add("executive_escalation")
        executive = True
    if isinstance(data, TicketEscalated) and (data.executive or data.trigger == "executive"):
        kinds.add("executive_escalation")
    if isinstance(data, TicketCommented) and data.comment.public and is_parent:
        kinds.add("incident_update")
    customer = data.customer if isinstance(data, TicketSnapshot) else view.customer
    severity = getattr(data, "severity", None) or view.severity
    return Facts(frozenset(kinds), str(severity) if severity else None,
                 customer.tier if customer else None, executive, _level(data, view))


def _level(data: Any, view: TicketView) -> int | None:
    if isinstance(data, TicketEscalated):
        return data.to_level
    level = getattr(data, "level", None)
    return level if isinstance(level, int) else view.level


def matches(rule: Rule, f: Facts) -> bool:
    """True when every filter of an enabled rule admits the event."""
    return (rule.enabled and bool(f.kinds.intersection(rule.events))
            and (not rule.severities or f.severity in rule.severities)
            and (not rule.tiers or f.tier in rule.tiers)
            and (rule.executive is None or rule.executive == f.executive)
            and (rule.min_level is None or (f.level is not None and f.level >= rule.min_level)))


def _holder(role: str, holder: Holder | None, fallback: str) -> list[Person]:
    if holder is None:
        return []
    return [Person(role, holder.name, holder.email, holder.language or fallback,
                   holder.timezone, True)]


def _contact(role: str, contact: Contact | None, fallback: str) -> list[Person]:
    if contact is None:
        return []
    return [Person(role, contact.name, contact.email, contact.language or fallback,
                   contact.timezone, True)]


def customer_person(customer: Customer, ticket_language: str | None) -> Person:
    language = customer.language or ticket_language or "en"
    return Person("customer", customer.name, str(customer.email), language, None, False)


def resolve(
    role: str,
    event: CloudEvent[Any],
    view: TicketView,
    *,
    executives: list[Contact],
    watchers: list[Contact],
    default_language: str = "en",
) -> list[Person]:
    """The people ``role`` names for this event; empty when the state does not say."""
    data = event.data
    lang = default_language
    customer = data.customer if isinstance(data, TicketSnapshot) else view.customer
    if role == "assignee":
        if isinstance(data, TicketAssigned):
            return _holder(role, data.assignee, lang)
        if isinstance(data, TicketEscalated):
            return _holder(role, data.to_assignee, lang)
        if isinstance(data, TicketUnassignable):
            return []
        return _holder(role, view.assignee, lang)
    if role == "previous_assignee":
        if isinstance(data, TicketAssigned):
            return _holder(role, data.previous_assignee, lang)
        if isinstance(data, TicketEscalated):
            return _holder(role, data.from_assignee, lang)
        return []
    if role == "supervisor":
        own = getattr(data, "supervisor", None)
        return _holder(role, own if isinstance(own, Holder) else view.supervisor, lang)
    if role in ("csm", "account_executive", "executive_sponsor"):
        return _contact(role, getattr(customer, role) if customer else None, lang)
    if role == "executives":
        return [p for c in executives for p in _contact(role, c, lang)]
    if role == "watchers":
        return [p for c in watchers for p in _contact(role, c, lang)]
    if role == "customer" and customer is not None:
        ticket_language = data.language if isinstance(data, TicketSnapshot) else view.language
        return [customer_person(customer, ticket_language)]
    return []
