"""The one shape every channel adapter produces, whatever its payload looked like."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from escalator.shared.events import Severity

#: ``replace``: the sender restates the ticket (api form); ``reply``: the customer writes
#: again in the conversation; ``alert``/``resolve``/``acknowledge``: monitoring states.
Mode = Literal["replace", "reply", "alert", "resolve", "acknowledge"]


@dataclass
class CustomerRef:
    """Whatever the channel tells us about the sender; the directory fills the rest."""

    email: str | None = None
    name: str | None = None
    phone: str | None = None
    handle: str | None = None
    account_id: str | None = None
    tier: str | None = None
    language: str | None = None


@dataclass
class Escalation:
    kind: Literal["hierarchical", "executive"]
    requested_by: Literal["customer", "chatbot", "agent", "rules"]
    reason: str


@dataclass
class Inbound:
    channel: str
    external_id: str
    subject: str
    description: str
    customer: CustomerRef
    severity: Severity | None = None
    category: str | None = None
    language: str | None = None
    mode: Mode = "reply"
    author: str | None = None
    recipient: str | None = None
    department: str | None = None
    #: Other ids of the same conversation (email References), looked up and remembered.
    thread_refs: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    escalation: Escalation | None = None
