"""Request and response bodies of the router API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from escalator.router.config import Id, Name
from escalator.router.roster import expand
from escalator.shared.events import Candidate, EscalationKind, Holder, Severity


class TeamOut(BaseModel):
    id: str
    name: str
    department: str | None
    lead: str | None = None
    skills: list[str] = []


class AgentOut(BaseModel):
    id: str
    name: str
    email: str
    team: str
    role: str
    available: bool
    on_shift: bool = Field(description="Inside one of the weekly shifts right now.")
    max_open_tickets: int
    open_assignments: int = Field(description="Open tickets this agent holds now.")
    skills: list[str] = []
    languages: list[str] = []
    timezone: str = "UTC"
    shifts: list[dict[str, Any]] = []
    chat_handle: str | None = None


class LevelOut(BaseModel):
    name: str
    team: str | None = None
    role: str | None = None
    agents: list[str] = []
    kind: EscalationKind
    strategy: str = "least_loaded"
    ack_timeout_seconds: float | None = None
    executive: bool = False


class EscalationPathOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    is_default: bool
    repeat: int = 0
    on_empty: str = "wait"
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
    strategy: str | None = None
    rule: str | None = None
    candidates: list[Candidate] | None = Field(
        default=None, description="On `assigned`: everyone considered, and why not picked.")

    @field_validator("candidates", mode="before")
    @classmethod
    def _expanded(cls, stored: Any) -> Any:
        """History rows keep the explanation compact (``roster.Pick.compact``)."""
        return expand(stored) if isinstance(stored, dict) else stored


class AssignmentOut(BaseModel):
    ticket_id: str
    path: str
    rule: str | None = Field(description="The path rule that matched; null: default path.")
    level: int = Field(description="0-based index into the escalation path.")
    level_name: str
    assignee: Holder | None = Field(description="Null when no agent was available.")
    strategy: str | None
    reason: str | None = Field(description="Why the current holder got it.")
    candidates: list[Candidate] = Field(description="The latest decision's candidates.")
    previous_holders: list[str] = Field(description="Everyone who held it, oldest first.")
    executive: bool
    severity: Severity
    status: Literal["open", "closed"]
    updated_at: datetime
    history: list[HistoryEntry] = Field(description="Oldest first.")


class EscalateIn(BaseModel):
    """``hierarchical`` goes one level up; ``functional`` goes to the level of ``team``;
    ``level`` (a level name) jumps straight to that level."""

    model_config = ConfigDict(extra="forbid")

    kind: EscalationKind | None = None
    team: Id | None = None
    level: Name | None = None
    reason: Name

    @model_validator(mode="after")
    def _one_target(self) -> EscalateIn:
        if self.level is None and self.kind is None:
            raise ValueError("give 'kind' (functional or hierarchical) or a 'level' name")
        if self.kind == EscalationKind.functional and self.team is None and self.level is None:
            raise ValueError("a functional escalation needs the target 'team'")
        return self


class EscalateOut(BaseModel):
    ticket_id: str
    level: int
    level_name: str
    assignee: Holder | None


class Page(BaseModel):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; "
                                    "null on the last page.")


class TeamPage(Page):
    items: list[TeamOut]


class AgentPage(Page):
    items: list[AgentOut]


class EscalationPathPage(Page):
    items: list[EscalationPathOut]
