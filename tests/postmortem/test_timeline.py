from __future__ import annotations

import json
import random

from escalator.postmortem.timeline import Entry, measure, ordered, summarize
from escalator.shared.events import EscalationKind
from tests.postmortem.factories import at, closed, envelope, escalated, story


def entries(ticket_id: str = "T-1") -> list[Entry]:
    events = [envelope(data, s) for s, data in [*story(ticket_id), (400, closed(ticket_id))]]
    return [Entry(event_id=e.id, type=e.type, time=e.time,
                  data=json.loads(e.data.model_dump_json()), source=e.source) for e in events]


def test_measures_of_a_hand_computed_story_in_any_order() -> None:
    shuffled = entries()
    random.Random(7).shuffle(shuffled)
    m = measure(shuffled)
    assert m.time_to_first_response_seconds == 90
    assert m.time_to_close_seconds == 400
    assert m.levels_reached == 2
    assert m.escalations == {"hierarchical": 1}
    assert m.sla_breaches == {"first_response": 1}
    assert m.reassignments == 1
    assert (m.notifications_sent, m.notifications_failed) == (1, 1)


def test_measures_of_an_empty_or_partial_timeline() -> None:
    m = measure([])
    assert m.time_to_first_response_seconds is None and m.time_to_close_seconds is None
    assert m.levels_reached == 0 and m.reassignments == 0 and m.escalations == {}
    # Without ticket.created, the opening time comes from the close's snapshot.
    only_close = [e for e in entries() if e.type == "ticket.closed"]
    assert measure(only_close).time_to_close_seconds == 400


def test_functional_and_hierarchical_escalations_are_counted_apart() -> None:
    extra = [envelope(escalated("T-1", 2, EscalationKind.functional), 70)]
    more = entries() + [Entry(event_id=e.id, type=e.type, time=e.time,
                              data=json.loads(e.data.model_dump_json())) for e in extra]
    m = measure(more)
    assert m.escalations == {"hierarchical": 1, "functional": 1}
    assert m.levels_reached == 3


def test_order_is_time_then_event_id_and_summaries_read_well() -> None:
    same_time = [Entry("b", "ticket.closed", at(1), {}), Entry("a", "ticket.resolved", at(1), {})]
    assert [e.event_id for e in ordered(same_time)] == ["a", "b"]
    by_type = {e.type: summarize(e) for e in entries()}
    assert by_type["ticket.created"] == "high ticket opened via api: Checkout fails"
    assert by_type["ticket.escalated"].startswith("hierarchical escalation L1 -> L2, now Bob")
    assert by_type["sla.breached"] == "first_response SLA breached, 0s late"
    assert "failed: HTTP 503" in by_type["notification.failed"]
    assert summarize(Entry("x", "something.new", at(0), {})) == "something.new"
