"""Notifier tables: where to send (webhook targets) and what was sent (deliveries)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from escalator.shared.db import NAMING_CONVENTION, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class DeliveryStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"
    #: Never sent: the ticket was resolved or closed before it could go (``service``).
    cancelled = "cancelled"


class WebhookTarget(Base):
    """A webhook destination and the event types it hears of.

    Loaded from YAML / the environment at start-up today; the rules API of a later
    release edits the same rows.
    """

    __tablename__ = "webhook_targets"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]]
    enabled: Mapped[bool]
    format: Mapped[str] = mapped_column(String(10), default="json", server_default="json")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Delivery(Base):
    """One message about one event to one recipient on one channel, and its fate."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # An event never yields two deliveries to one recipient, however often it arrives.
        UniqueConstraint("about_event_id", "channel", "target_id"),
        Index("ix_deliveries_ticket_id", "ticket_id"),
        Index("ix_deliveries_recipient", text("lower(recipient)")),
        Index("ix_deliveries_created_at_id", "created_at", "id"),
        # The dispatcher scans only pending rows by due time.
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(200))
    about_event_id: Mapped[str] = mapped_column(String(255))
    about_event_type: Mapped[str] = mapped_column(String(200))
    #: When it happened (the event time): later than a resolution, it is not moot.
    about_event_time: Mapped[datetime | None]
    channel: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[str] = mapped_column(String(100))
    recipient: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class RuleRow(Base):
    """A notification rule (``rules.Rule``), from YAML or the REST API."""

    __tablename__ = "rules"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TemplateRow(Base):
    """A template edited over REST; it overrides the shipped one with the same key."""

    __tablename__ = "templates"
    __table_args__ = (PrimaryKeyConstraint("event", "audience", "channel", "language"),)

    event: Mapped[str] = mapped_column(String(60))
    audience: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class TicketRow(Base):
    """The notifier's projection of a ticket: contacts and the facts rules filter on,
    for events that do not carry them, and the incident each child is linked to."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_parent_id", "parent_id"),)

    ticket_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    subject: Mapped[str | None] = mapped_column(String(500))
    customer: Mapped[dict[str, Any] | None]
    language: Mapped[str | None] = mapped_column(String(20))
    severity: Mapped[str | None] = mapped_column(String(20))
    executive: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[str | None] = mapped_column(String(200))
    level: Mapped[int | None] = mapped_column(Integer)
    assignee: Mapped[dict[str, Any] | None]
    supervisor: Mapped[dict[str, Any] | None]
    #: The ticket's status and when it took it (the event time), so a message about
    #: something that happened before a resolution can tell it is moot.
    status: Mapped[str | None] = mapped_column(String(20))
    status_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
