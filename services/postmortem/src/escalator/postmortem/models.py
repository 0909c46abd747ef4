"""Postmortem owns each ticket's timeline and the post-mortem records built on it.

The timeline is its own projection of every topic (no service reads another's tables),
stored raw per event so measures and summaries can be recomputed at read time: events
that arrive late, or across topics out of order, still count.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, MetaData, String, Text
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
