"""Which closed tickets get a post-mortem: each criterion alone, switched off, combined."""

from __future__ import annotations

import json
from typing import Any

from escalator.postmortem.config import Criteria
from escalator.postmortem.criteria import reasons
from escalator.postmortem.timeline import Entry
from escalator.shared.events import EscalationKind, EventData, Severity
from tests.postmortem.factories import assigned, breached, envelope, escalated


def as_entries(*data: EventData) -> list[Entry]:
    events = [envelope(d, i) for i, d in enumerate(data)]
    return [Entry(e.id, e.type, e.time, json.loads(e.data.model_dump_json())) for e in events]


def snapshot(severity: str = "medium", executive: bool = False) -> dict[str, Any]:
    return {"severity": severity, "executive": executive}


def test_a_quiet_medium_ticket_is_no_escalation() -> None:
    assert reasons(Criteria(), as_entries(assigned("T", 0, "Ann")), snapshot()) == []
    assert reasons(Criteria(), [], None) == []


def test_each_default_criterion_alone() -> None:
    past_first = as_entries(assigned("T", 0, "Ann"),
                            escalated("T", 1, EscalationKind.functional))
    assert reasons(Criteria(), past_first, snapshot()) == ["escalated_past_first_level"]
    # A direct assignment at level 1 (e.g. a rule that skips L1) also counts.
    assert reasons(Criteria(), as_entries(assigned("T", 1, "Bob")), snapshot()) == [
        "escalated_past_first_level"]
    assert reasons(Criteria(), as_entries(breached("T", "resolution")), snapshot()) == [
        "sla_breach"]
    assert reasons(Criteria(), [], snapshot("high")) == ["severity_high"]
    assert reasons(Criteria(), [], snapshot("critical")) == ["severity_critical"]
    assert reasons(Criteria(), [], snapshot(executive=True)) == ["executive_escalation"]


def test_executive_from_an_event_rather_than_the_snapshot() -> None:
    entries = as_entries(escalated("T", 0, EscalationKind.hierarchical))
    data = dict(entries[0].data, trigger="executive", to_level=0)
    exec_entry = Entry("x", "ticket.escalated", entries[0].time, data)
    assert reasons(Criteria(), [exec_entry], snapshot()) == ["executive_escalation"]
    requested = Entry("y", "ticket.escalation_requested", entries[0].time,
                      {"kind": "executive"})
    assert reasons(Criteria(), [requested], snapshot()) == ["executive_escalation"]


def test_criteria_switched_off_or_narrowed_by_configuration() -> None:
    everything = as_entries(assigned("T", 0, "Ann"), breached("T"),
                            escalated("T", 2, EscalationKind.hierarchical))
    none = Criteria(escalated_past_first_level=False, any_sla_breach=False, severities=[],
                    executive=False)
    assert reasons(none, everything, snapshot("critical", executive=True)) == []
    only_critical = Criteria(escalated_past_first_level=False, any_sla_breach=False,
                             severities=[Severity.critical], executive=False)
    assert reasons(only_critical, [], snapshot("high")) == []
    assert reasons(only_critical, [], snapshot("critical")) == ["severity_critical"]
    assert reasons(Criteria(), everything, snapshot("high", executive=True)) == [
        "escalated_past_first_level", "sla_breach", "severity_high", "executive_escalation"]
