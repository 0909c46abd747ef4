"""Postmortem owns each ticket's timeline and the post-mortem records built on it.

The timeline is its own projection of every topic (no service reads another's tables),
stored raw per event so measures and summaries can be recomputed at read time: events
that arrive late, or across topics out of order, still count.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from escalator.shared.db import NAMING_CONVENTION, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}


class TimelineEvent(Base):
    """One consumed event, keyed by its CloudEvents id so a redelivery is stored once."""

    __tablename__ = "timeline_events"
    __table_args__ = (
        # Serves both "this ticket's events" and "in time order"; no separate index on
        # ticket_id is needed since it is the leading column.
        Index("ix_timeline_events_ticket_id_time", "ticket_id", "time"),
    )

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(500))
    time: Mapped[datetime]
    topic: Mapped[str] = mapped_column(String(200))
    #: The event's ``data`` as JSON text, exactly as the producer's model dumped it.
    data: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]


class Postmortem(Base):
    """The review of one closed ticket; at most one per ticket, however often it closes."""

    __tablename__ = "postmortems"
    __table_args__ = (
        Index("ix_postmortems_created_at_id", "created_at", "id"),
        Index("ix_postmortems_status", "status"),
        Index("ix_postmortems_closed_at", "closed_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime]
    # Copied from the ticket.closed snapshot so lists and reports need no other service.
    subject: Mapped[str] = mapped_column(String(500))
    severity: Mapped[str] = mapped_column(String(10))
    category: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(20))
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_email: Mapped[str] = mapped_column(String(320))
    customer_tier: Mapped[str] = mapped_column(String(50))
    executive: Mapped[bool] = mapped_column(Boolean, default=False)
    #: JSON list of the criteria the ticket met (why it has a post-mortem).
    reasons: Mapped[str] = mapped_column(Text, default="[]")
    # The review (workflow in ``review.py``).
    summary: Mapped[str | None] = mapped_column(Text)
    customer_impact: Mapped[str | None] = mapped_column(Text)
    root_cause_category: Mapped[str | None] = mapped_column(String(100))
    root_cause_text: Mapped[str | None] = mapped_column(Text)
    went_well: Mapped[str | None] = mapped_column(Text)
    went_badly: Mapped[str | None] = mapped_column(Text)
    #: JSON object: product, training, documentation, process -> text.
    improvements: Mapped[str] = mapped_column(Text, default="{}")
    concessions: Mapped[str | None] = mapped_column(Text)
    #: The reviewer's explicit "no action items needed".
    no_action_items: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewer: Mapped[str | None] = mapped_column(String(200))
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]


class ActionItem(Base):
    """Something to change so the next escalation goes better; overdue when past due
    and not finished."""

    __tablename__ = "action_items"
    __table_args__ = (Index("ix_action_items_postmortem_id", "postmortem_id"),
                      Index("ix_action_items_status_due_date", "status", "due_date"),
                      UniqueConstraint("postmortem_id", "idempotency_key"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    postmortem_id: Mapped[str] = mapped_column(String(36), ForeignKey("postmortems.id"))
    title: Mapped[str] = mapped_column(String(500))
    owner: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: The client's ``Idempotency-Key``: a retried create returns this item.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))


class Change(Base):
    """One recorded edit: who (API key name) changed what, when, from what to what."""

    __tablename__ = "postmortem_changes"
    __table_args__ = (Index("ix_postmortem_changes_postmortem_id_id", "postmortem_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    postmortem_id: Mapped[str] = mapped_column(String(36), ForeignKey("postmortems.id"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    #: ``postmortem`` or ``action_item:<id>``.
    target: Mapped[str] = mapped_column(String(100))
    field: Mapped[str] = mapped_column(String(100))
    #: JSON of the value before and after.
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)


class Survey(Base):
    """The customer's one answer for a ticket (the primary key makes "once" a constraint)."""

    __tablename__ = "surveys"
    __table_args__ = (Index("ix_surveys_submitted_at", "submitted_at"),)

    ticket_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime]
