"""Response bodies of the router API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from escalator.shared.events import EscalationKind, Holder, Severity


class TeamOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    department: str | None


class AgentOut(BaseModel):
    id: str
    name: str
    email: str
    team: str
    role: str
    available: bool
    max_open_tickets: int
    open_assignments: int = Field(description="Open tickets this agent holds now.")


class LevelOut(BaseModel):
    name: str
    team: str
    kind: EscalationKind


class EscalationPathOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    is_default: bool
    levels: list[LevelOut]


class HistoryEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    level: int
    level_name: str
    agent_id: str | None
    action: Literal["assigned", "escalated", "top_level_reached"]
    trigger: str
    reason: str
    at: datetime


class AssignmentOut(BaseModel):
    ticket_id: str
    path: str
    level: int = Field(description="0-based index into the escalation path.")
    level_name: str
    assignee: Holder | None = Field(description="Null when no agent was available.")
    severity: Severity
    status: Literal["open", "closed"]
    updated_at: datetime
    history: list[HistoryEntry] = Field(description="Oldest first.")


class Page(BaseModel):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; "
                                    "null on the last page.")


class TeamPage(Page):
    items: list[TeamOut]


class AgentPage(Page):
    items: list[AgentOut]


class EscalationPathPage(Page):
    items: list[EscalationPathOut]
