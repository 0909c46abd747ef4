from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

from escalator.postmortem.calendar import business_seconds
from escalator.postmortem.config import BusinessHours
from escalator.postmortem.timeline import Entry, measure, ordered, summarize
from escalator.shared.events import (
    Comment,
    EscalationKind,
    TicketAcknowledged,
    TicketClosed,
    TicketCreated,
    TicketCustomerReplied,
    TicketResolved,
    TicketStatus,
)
from tests.postmortem.factories import (
    assigned,
    at,
    closed,
    envelope,
    escalated,
    story,
    ticket,
)


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
    # Added measures, by hand: resolved at 300 s; L1 (Ann) held it 5 -> 61 s, L2 (Bob)
    # 61 -> 400 s (the escalation and the L2 assignment at 61 s are one hold).
    assert m.time_to_resolution_seconds == 300
    assert m.time_at_level_seconds == {"L1": 56, "L2": 339}
    assert [(h.level, h.assignee, h.start, h.end) for h in m.level_holds] == [
        (0, "Ann", at(5), at(61)), (1, "Bob", at(61), at(400))]
    assert m.customer_replies == 0
    assert m.channels_used == ["api"] and m.notification_channels == ["webhook"]
    # No business hours configured: business figures are unknown, not zero.
    assert m.time_to_first_response_business_seconds is None
    assert m.time_to_resolution_business_seconds is None


def test_business_time_customer_replies_channels_and_returns_to_a_level() -> None:
    """T0 is Tuesday 2026-11-24 09:00 UTC = 11:00 in Athens (UTC+2). Business hours
    09:00-17:00 Athens = 07:00-15:00 UTC on weekdays.

    - first response at T0+7h (16:00 UTC): business 09:00-15:00 UTC = 6 h;
    - resolved Wednesday 08:00 UTC (T0+23h): 6 h Tuesday + 07:00-08:00 Wednesday = 7 h;
      with Wednesday a holiday, 6 h;
    - L1 (Ann) 0-1h, L2 (Bob) 1h-2h, back to L1 (Cy) 2h until the close at 24h.
    """
    h = 3600
    tid = "T-2"
    data = [
        (0, ticket(TicketCreated, tid, TicketStatus.open)),
        (0, assigned(tid, 0, "Ann")),
        (1 * h, escalated(tid, 1, EscalationKind.functional)),
        (2 * h, assigned(tid, 0, "Cy")),
        (3 * h, ticket(TicketCustomerReplied, tid, TicketStatus.open, channel="email",
                       comment=Comment(id="c1", author_type="customer", author="Acme",
                                       public=True, body="any news?", created_at=at(3 * h)))),
        (4 * h, ticket(TicketCustomerReplied, tid, TicketStatus.open, channel="email",
                       comment=Comment(id="c2", author_type="customer", author="Acme",
                                       public=True, body="hello?", created_at=at(4 * h)))),
        (7 * h, ticket(TicketAcknowledged, tid, TicketStatus.acknowledged)),
        (23 * h, ticket(TicketResolved, tid, TicketStatus.resolved)),
        (24 * h, ticket(TicketClosed, tid, TicketStatus.closed)),
    ]
    events = [envelope(d, s) for s, d in data]
    items = [Entry(e.id, e.type, e.time, json.loads(e.data.model_dump_json())) for e in events]
    athens = BusinessHours(timezone="Europe/Athens")
    m = measure(items, athens)
    assert m.time_to_first_response_seconds == 7 * h
    assert m.time_to_first_response_business_seconds == 6 * h
    assert m.time_to_resolution_seconds == 23 * h
    assert m.time_to_resolution_business_seconds == 7 * h
    assert m.time_to_close_seconds == 24 * h
    holiday = BusinessHours(timezone="Europe/Athens", holidays=[date(2026, 11, 25)])
    assert measure(items, holiday).time_to_resolution_business_seconds == 6 * h
    assert [(h_.level_name, h_.assignee, h_.seconds) for h_ in m.level_holds] == [
        ("L1", "Ann", 1 * h), ("L2", "Bob", 1 * h), ("L1", "Cy", 22 * h)]
    assert m.time_at_level_seconds == {"L1": 23 * h, "L2": 1 * h}
    assert m.levels_reached == 2 and m.escalations == {"functional": 1}
    assert m.reassignments == 1
    assert m.customer_replies == 2
    assert m.channels_used == ["api", "email"]


def test_business_seconds_edges() -> None:
    hours = BusinessHours()  # UTC, Monday-Friday 09:00-17:00
    saturday = datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert business_seconds(hours, saturday, saturday + timedelta(days=1)) == 0
    friday_4pm = datetime(2026, 11, 27, 16, tzinfo=UTC)
    monday_10am = datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert business_seconds(hours, friday_4pm, monday_10am) == 2 * 3600
    assert business_seconds(hours, monday_10am, friday_4pm) == 0
    # Across the end of DST in Athens (25 Oct 2026): the window stays 09:00-17:00 local.
    athens = BusinessHours(timezone="Europe/Athens")
    fri = datetime(2026, 10, 23, 6, tzinfo=UTC)
    mon = datetime(2026, 10, 26, 16, tzinfo=UTC)
    assert business_seconds(athens, fri, mon) == 16 * 3600


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
