"""Rule matching and role resolution: pure functions over real event models."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from escalator.notifier.config import NotifierConfig
from escalator.notifier.rules import Rule, TicketView, facts, matches, resolve
from escalator.shared.events import (
    CloudEvent,
    Comment,
    Contact,
    Holder,
    TicketCommented,
    TicketEscalated,
    TicketEscalationRequested,
    TicketResolved,
    utcnow,
)
from tests.notifier.helpers import ALICE, CHEN, CUSTOMER, assigned, breached, snapshot

BOSS = Holder(agent_id="boss", name="Bea Boss", email="bea@helpdesk.example", team="support-l1")
DANA = Contact(name="Dana Exec", email="dana@corp.example", timezone="Europe/Lisbon")


def rule(**values: Any) -> Rule:
    return Rule.model_validate({"id": "r", "recipients": ["assignee"], **values})


def names(role: str, event: CloudEvent[Any], view: TicketView | None = None) -> list[str]:
    people = resolve(role, event, view or TicketView(), executives=[DANA], watchers=[])
    return [p.email for p in people]


def test_filters_each_narrow_the_match() -> None:
    event = assigned(level=2)
    f = facts(event, TicketView(customer=CUSTOMER), is_parent=False)
    assert f.kinds == {"ticket.assigned"} and f.tier == "gold" and f.level == 2
    assert matches(rule(events=["ticket.assigned"]), f)
    assert not matches(rule(events=["ticket.escalated"]), f)
    assert matches(rule(events=["ticket.assigned"], severities=["high", "critical"]), f)
    assert not matches(rule(events=["ticket.assigned"], severities=["low"]), f)
    assert matches(rule(events=["ticket.assigned"], tiers=["gold"]), f)
    assert not matches(rule(events=["ticket.assigned"], tiers=["standard"]), f)
    assert matches(rule(events=["ticket.assigned"], min_level=2), f)
    assert not matches(rule(events=["ticket.assigned"], min_level=3), f)
    assert not matches(rule(events=["ticket.assigned"], executive=True), f)
    assert matches(rule(events=["ticket.assigned"], executive=False), f)
    assert not matches(rule(events=["ticket.assigned"], enabled=False), f)
    # No projection yet: a tier filter cannot be satisfied, a missing level neither.
    bare = facts(breached(), TicketView(), is_parent=False)
    assert not matches(rule(events=["sla.breached"], tiers=["gold"]), bare)
    assert not matches(rule(events=["sla.breached"], min_level=0), bare)
    assert matches(rule(events=["sla.breached"]), bare)


def test_derived_kinds_executive_escalation_and_incident_update() -> None:
    request = snapshot(TicketEscalationRequested, kind="executive", requested_by="customer",
                       reason="threatens to cancel")
    f = facts(request, TicketView(), is_parent=False)
    assert {"ticket.escalation_requested", "executive_escalation"} <= f.kinds and f.executive
    plain = snapshot(TicketEscalationRequested, kind="hierarchical", requested_by="customer",
                     reason="wants a manager")
    assert "executive_escalation" not in facts(plain, TicketView(), is_parent=False).kinds
    escalation = CloudEvent.wrap(TicketEscalated(
        ticket_id="t", severity="critical", path="p", kind="hierarchical", trigger="executive",
        from_level=0, from_level_name="L1", to_level=2, to_level_name="Exec", from_assignee=ALICE,
        to_assignee=CHEN, reason="executive", supervisor=BOSS), source="/t")
    f = facts(escalation, TicketView(), is_parent=False)
    assert "executive_escalation" in f.kinds and f.level == 2

    comment = Comment(id="c1", author_type="agent", author="chen", public=True,
                      body="Mitigated.", created_at=utcnow())
    update = snapshot(TicketCommented, comment=comment)
    assert "incident_update" in facts(update, TicketView(), is_parent=True).kinds
    assert "incident_update" not in facts(update, TicketView(), is_parent=False).kinds
    private = snapshot(TicketCommented, comment=comment.model_copy(update={"public": False}))
    assert "incident_update" not in facts(private, TicketView(), is_parent=True).kinds


def test_roles_resolve_from_the_carried_state() -> None:
    moved = assigned(assignee=CHEN, previous_assignee=ALICE, supervisor=BOSS)
    assert names("assignee", moved) == [CHEN.email]
    assert names("previous_assignee", moved) == [ALICE.email]
    assert names("supervisor", moved) == [BOSS.email]
    assert names("executives", moved) == [DANA.email]
    assert names("watchers", moved) == []
    # Assignments carry no customer: the projection supplies the account team.
    view = TicketView(customer=CUSTOMER, language="pt")
    assert names("csm", moved, view) == ["carla@helpdesk.example"]
    assert names("account_executive", moved, view) == ["aaron@helpdesk.example"]
    assert names("executive_sponsor", moved, view) == []
    [customer] = resolve("customer", moved, view, executives=[], watchers=[])
    assert customer.email == "ana@client.example" and customer.language == "pt"
    assert not customer.internal

    resolved = snapshot(TicketResolved, language="es",
                        customer=CUSTOMER.model_copy(update={"language": None}))
    [person] = resolve("customer", resolved, TicketView(), executives=[], watchers=[])
    assert person.language == "es"  # the ticket's language when the customer has none
    # SLA events carry no holder: the projection's current one is reached.
    assert names("assignee", breached(), TicketView(assignee=ALICE)) == [ALICE.email]
    assert names("previous_assignee", breached(), TicketView(assignee=ALICE)) == []


@pytest.mark.parametrize("bad", [
    {"id": "r", "events": [], "recipients": ["assignee"]},
    {"id": "r", "events": ["ticket.exploded"], "recipients": ["assignee"]},
    {"id": "r", "events": ["ticket.assigned"], "recipients": ["the-pope"]},
    {"id": "r", "events": ["ticket.assigned"], "recipients": []},
    {"id": "r", "events": ["ticket.assigned"], "channel": "webhook"},
    {"id": "r", "events": ["ticket.assigned"], "recipients": ["assignee"], "min_level": -1},
    {"id": "r", "events": ["ticket.assigned"], "recipients": ["assignee"], "severities": ["x"]},
    {"id": "r r", "events": ["ticket.assigned"], "recipients": ["assignee"]},
    {"id": "r", "events": ["ticket.assigned"], "recipients": ["assignee"], "colour": "red"},
])
def test_bad_rules_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Rule.model_validate(bad)


def test_yaml_section_with_rules_people_and_promises() -> None:
    config = NotifierConfig.model_validate({
        "rules": [{"id": "execs", "events": ["executive_escalation"],
                   "recipients": ["executives"]}],
        "executives": [{"name": "Dana", "email": "dana@corp.example"}],
        "promise_hours": {"critical": 0.5},
    })
    assert config.rules[0].channel == "email" and config.executives[0].name == "Dana"
    assert NotifierConfig().promise_hours["high"] == 4
    rule_ = {"id": "a", "events": ["ticket.assigned"], "recipients": ["assignee"]}
    with pytest.raises(ValidationError, match="duplicate rule ids: a"):
        NotifierConfig.model_validate({"rules": [rule_, rule_]})
