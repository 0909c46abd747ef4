"""Ingest owns tickets: the normalized unit of work, its conversation and its lifecycle.

``status`` is the coarse state every consumer knows (``TicketStatus`` of the event
contract: open, acknowledged, resolved, closed); ``state`` is the help desk's finer
lifecycle (new, assigned, acknowledged, waiting_on_customer, resolved, closed). Both are
stored so list filters on either stay index-friendly and responses stay compatible.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from escalator.shared.db import NAMING_CONVENTION, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


_OPEN = text("state NOT IN ('resolved', 'closed')")


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # One conversation is one ticket: a channel's own id for it maps to one row.
        UniqueConstraint("channel", "external_id"),
        Index("ix_tickets_created_at_id", "created_at", "id"),
        Index("ix_tickets_status", "status"),
        # The open-tickets gauge counts only these (``metrics.OPEN``): closed tickets pile
        # up for good, and a count over the table read every one of them.
        Index("ix_tickets_open_severity", "severity", postgresql_where=_OPEN,
              sqlite_where=_OPEN),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    #: The channel's conversation id, prefixed for some channels (``pagerduty:`` + a dedup
    #: key of up to 255 characters) and suffixed when a closed conversation starts anew.
    external_id: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(100))
    customer_email: Mapped[str] = mapped_column(String(320))
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_tier: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # Added by revision 0002.
    state: Mapped[str] = mapped_column(String(30), default="new", index=True)
    language: Mapped[str] = mapped_column(String(20), default="en")
    executive: Mapped[bool] = mapped_column(Boolean, default=False)
    severity_reason: Mapped[str | None] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(100))
    parent_id: Mapped[str | None] = mapped_column(String(36), index=True)
    assignee_id: Mapped[str | None] = mapped_column(String(100), index=True)
    customer_account_id: Mapped[str | None] = mapped_column(String(100), index=True)
    #: The whole ``Customer`` (contacts, language...) so events carry it without lookups.
    customer_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Channel specifics worth keeping (attachments, call record, transcript, post URL).
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)


class ThreadKey(Base):
    """Further ids of a conversation (every email Message-ID in it) -> its ticket."""

    __tablename__ = "ticket_threads"

    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)


class TicketComment(Base):
    __tablename__ = "ticket_comments"
    __table_args__ = (Index("ix_ticket_comments_ticket_id_created_at", "ticket_id",
                            "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"))
    author_type: Mapped[str] = mapped_column(String(20))
    author: Mapped[str] = mapped_column(String(320))
    public: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class CustomerAccount(Base):
    """The customer directory: loaded from YAML, editable by REST."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    tier: Mapped[str] = mapped_column(String(50), default="standard")
    language: Mapped[str | None] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CustomerIdentity(Base):
    """How an inbound event finds its account: ``email:x``, ``phone:+...``, ``handle:...``."""

    __tablename__ = "customer_identities"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"),
                                             index=True)


class IdempotentRequest(Base):
    """The first answer to a create carrying ``Idempotency-Key``, replayed on retries."""

    __tablename__ = "idempotent_requests"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class SeenSignature(Base):
    """A signed webhook request already taken: the same signed bytes again are a replay.

    Kept only while its timestamp is inside the tolerance window; older signatures are
    refused by their timestamp alone, so their rows are pruned.
    """

    __tablename__ = "seen_signatures"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)
