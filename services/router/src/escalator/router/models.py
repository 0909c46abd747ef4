"""Router owns who may hold tickets (teams, agents, escalation paths) and who holds each now.

``assignments`` is the router's projection of a ticket: one row per ticket, its place on
its path and its holder. ``assignment_history`` is append-only, so the API can show how a
ticket got where it is without reassembling it from the topics.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from escalator.shared.db import NAMING_CONVENTION, AutoId, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(100))
    #: The team's supervisor (an agent id), told when nobody in the team can take a ticket.
    lead_id: Mapped[str | None] = mapped_column(String(100))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (Index("ix_agents_team_id", "team_id"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    team_id: Mapped[str] = mapped_column(String(100), ForeignKey("teams.id"))
    role: Mapped[str] = mapped_column(String(50), default="agent")
    available: Mapped[bool] = mapped_column(default=True)
    max_open_tickets: Mapped[int] = mapped_column(default=20)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: Weekly shifts ``[{days: [mon, ...], start: "09:00", end: "17:00"}]`` in ``timezone``;
    #: empty means always on shift.
    shifts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    chat_handle: Mapped[str | None] = mapped_column(String(200))
    #: Open tickets held, kept from the router's own decisions and ticket events and
    #: changed only under the agent's row lock, so capacity holds across replicas.
    open_tickets: Mapped[int] = mapped_column(default=0)


class EscalationPath(Base):
    __tablename__ = "escalation_paths"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    is_default: Mapped[bool] = mapped_column(default=False)
    #: Ordered ``[{name, team, kind}, ...]``; always read and written whole.
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: How many times the top level is re-assigned (to someone else) before it just stays.
    repeat: Mapped[int] = mapped_column(default=0)
    #: ``wait`` (stay queued until the level's ack timeout) or ``skip`` (move on at once).
    on_empty: Mapped[str] = mapped_column(String(10), default="wait")


class PathRule(Base):
    """Which path a new ticket takes; rules are tried in ``position`` order, first wins."""

    __tablename__ = "path_rules"

    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(100), unique=True)
    path_id: Mapped[str] = mapped_column(String(100))
    match: Mapped[dict[str, Any]] = mapped_column(JSON)


class ConfigVersion(Base):
    """One row whose ``version`` every roster change (REST or YAML) bumps in its own
    transaction: replicas keep the roster in memory and compare this number on every
    decision, so a committed change is routed with by the next decision everywhere."""

    __tablename__ = "config_version"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(default=0)


class RoundRobin(Base):
    """Round-robin cursor per path level, in the database so every replica shares it."""

    __tablename__ = "round_robin"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_agent_id: Mapped[str | None] = mapped_column(String(100))
    turns: Mapped[int] = mapped_column(default=0)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        # Counting an agent's open tickets is the hot query of every routing decision.
        Index("ix_assignments_agent_id_status", "agent_id", "status"),
    )

    ticket_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    path_id: Mapped[str] = mapped_column(String(100), ForeignKey("escalation_paths.id"))
    level: Mapped[int]
    agent_id: Mapped[str | None] = mapped_column(String(100), ForeignKey("agents.id"))
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10))
    rule: Mapped[str | None] = mapped_column(String(100))
    executive: Mapped[bool] = mapped_column(default=False)
    language: Mapped[str | None] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(100))
    sponsor_email: Mapped[str | None] = mapped_column(String(320))
    #: Every agent who has held the ticket, oldest first (the no-ping-pong rule reads it).
    holders: Mapped[list[str]] = mapped_column(JSON, default=list)
    repeats: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AssignmentHistory(Base):
    __tablename__ = "assignment_history"
    __table_args__ = (Index("ix_assignment_history_ticket_id", "ticket_id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(String(36))
    level: Mapped[int]
    level_name: Mapped[str] = mapped_column(String(200))
    # No foreign key: history outlives agents removed from the roster.
    agent_id: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(30))
    trigger: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    strategy: Mapped[str | None] = mapped_column(String(30))
    rule: Mapped[str | None] = mapped_column(String(100))
    #: The decision's explanation, compact because a level can hold hundreds of agents:
    #: ``{picked, reasons: [text...], agents: [[id, name, open_tickets, reason index]...]}``
    #: (``roster.expand`` turns it back into candidates).
    candidates: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PendingMove(Base):
    """A move triggered before its ticket was routed, kept until it is (``deferred``).

    Breaches and escalation requests travel on other topics than the ticket's creation,
    so nothing orders them: a router catching up on a backlog can read a ticket's breach
    before the ticket."""

    __tablename__ = "pending_moves"
    __table_args__ = (Index("ix_pending_moves_ticket_id", "ticket_id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(String(36))
    trigger: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(20))
    executive: Mapped[bool] = mapped_column(default=False)
    sponsor_email: Mapped[str | None] = mapped_column(String(320))
    received_at: Mapped[datetime]
