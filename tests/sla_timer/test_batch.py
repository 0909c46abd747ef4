"""Runs of ticket events in one consumer batch: every ticket's clocks start once, and a
run of mixed events ends where applying them one at a time ends."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from escalator.shared.events import (
    CloudEvent,
    Holder,
    Severity,
    TicketAcknowledged,
    TicketAssigned,
    TicketClosed,
    TicketCommented,
    TicketCreated,
    TicketCustomerReplied,
    TicketReopened,
    TicketResolved,
    TicketWaitingOnCustomer,
    utcnow,
)
from tests.sla_timer.helpers import (
    clocks,
    comment,
    new_ticket_id,
    policy_file,
    serving,
    settings,
    ticket_event,
)
from tests.support import Env


async def test_a_run_of_creations_starts_each_tickets_clocks_once(
    env: Env, tmp_path: Path
) -> None:
    config = policy_file(tmp_path, {"id": "std", "match": {"category": "std"},
                                    "first_response": "PT1H", "resolution": "PT8H"})
    first, second, unmatched = new_ticket_id(), new_ticket_id(), new_ticket_id()
    # The third is the first ticket's creation again under another event id.
    events = [ticket_event(TicketCreated, first, category="std"),
              ticket_event(TicketCreated, second, category="std"),
              ticket_event(TicketCreated, first, category="std"),
              ticket_event(TicketCreated, unmatched, category="nothing-matches")]
    topic = f"{env.prefix}tickets"
    records = [ConsumerRecord(topic, 0, n, 0, 0, e.subject.encode(),
                              e.model_dump_json().encode(), None, 0, 0, ())
               for n, e in enumerate(events)]
    async with serving(env, settings(env, config), consumer_ready=False) as svc:
        runner = svc.runtime.runner
        assert runner is not None
        assert await runner._apply_batch(TopicPartition(topic, 0), records)
        for ticket_id in (first, second):
            started = await clocks(svc, ticket_id)
            assert sorted((c["name"], c["cycle"]) for c in started) == [
                ("first_response", 0), ("resolution", 0)], ticket_id
            assert {c["policy"] for c in started} == {"std"}
        assert await clocks(svc, unmatched) == []
        # Redelivered, the batch changes nothing.
        assert await runner._apply_batch(TopicPartition(topic, 0), records)
        assert len(await clocks(svc, first)) == 2


async def test_a_run_of_assignments_applies_each_in_order(env: Env, tmp_path: Path) -> None:
    """Assignments read their tickets' clocks with one query, then apply in order: a
    reassignment later in the same run supersedes the acknowledgement clock the run
    started, and every clock ends on the last level."""
    config = policy_file(tmp_path, {"id": "std", "match": {"category": "std"},
                                    "first_response": "PT1H", "resolution": "PT8H"})
    first, second = new_ticket_id(), new_ticket_id()
    now = utcnow()
    created = [ticket_event(TicketCreated, t, category="std", at=now) for t in (first, second)]
    assigned = [_assigned(first, 0, now), _assigned(second, 0, now),
                _assigned(first, 1, now + timedelta(seconds=1))]
    async with serving(env, settings(env, config), consumer_ready=False) as svc:
        runner = svc.runtime.runner
        assert runner is not None
        for topic, batch in (("tickets", created), ("assignments", assigned)):
            name = f"{env.prefix}{topic}"
            assert await runner._apply_batch(TopicPartition(name, 0), [
                ConsumerRecord(name, 0, n, 0, 0, e.subject.encode(),
                               e.model_dump_json().encode(), None, 0, 0, ())
                for n, e in enumerate(batch)])
        one, two = await clocks(svc, first), await clocks(svc, second)
    assert sorted((c["name"], c["cycle"], c["status"], c["level"]) for c in one) == [
        ("acknowledgement", 0, "stopped", 0), ("acknowledgement", 1, "running", 1),
        ("first_response", 0, "running", 1), ("resolution", 0, "running", 1)]
    assert sorted((c["name"], c["cycle"], c["status"], c["level"]) for c in two) == [
        ("acknowledgement", 0, "running", 0), ("first_response", 0, "running", 0),
        ("resolution", 0, "running", 0)]


def _assigned(ticket_id: str, level: int, at: datetime) -> CloudEvent[TicketAssigned]:
    return CloudEvent.wrap(TicketAssigned(
        ticket_id=ticket_id, severity=Severity.high, path="default", level=level,
        level_name=f"L{level + 1}", strategy="least_loaded", reason="test",
        assignee=Holder(agent_id=f"a{level}", name="Ada", email="ada@example.test",
                        team="t1"), ack_timeout_seconds=600), source="/test", time=at)


async def test_a_run_of_acknowledgements_meets_each_tickets_clocks_at_its_first(
    env: Env, tmp_path: Path
) -> None:
    """Acknowledgements read their tickets' clocks with one query: each ticket's first
    acknowledgement in the run meets its clocks, a second one changes nothing."""
    config = policy_file(tmp_path, {"id": "std", "match": {"category": "std"},
                                    "first_response": "PT1H", "resolution": "PT8H"})
    first, second = new_ticket_id(), new_ticket_id()
    now = utcnow()
    batches = [
        ("tickets", [ticket_event(TicketCreated, t, category="std", at=now)
                     for t in (first, second)]),
        ("assignments", [_assigned(t, 0, now) for t in (first, second)]),
        ("tickets", [ticket_event(TicketAcknowledged, t, category="std", at=now + delay)
                     for t, delay in ((first, timedelta(seconds=5)),
                                      (second, timedelta(seconds=7)),
                                      (first, timedelta(seconds=9)))]),
    ]
    async with serving(env, settings(env, config), consumer_ready=False) as svc:
        runner = svc.runtime.runner
        assert runner is not None
        for offset, (topic, batch) in enumerate(batches):
            name = f"{env.prefix}{topic}"
            assert await runner._apply_batch(TopicPartition(name, 0), [
                ConsumerRecord(name, 0, offset * 10 + n, 0, 0, e.subject.encode(),
                               e.model_dump_json().encode(), None, 0, 0, ())
                for n, e in enumerate(batch)])
        for ticket, delay in ((first, 5), (second, 7)):
            met = {c["name"]: c for c in await clocks(svc, ticket)}
            for name in ("first_response", "acknowledgement"):
                assert met[name]["status"] == "met", (ticket, name)
                assert datetime.fromisoformat(met[name]["met_at"]) == now + timedelta(
                    seconds=delay), (ticket, name)
            assert met["resolution"]["status"] == "running"


async def test_a_run_of_mixed_events_ends_as_one_event_at_a_time(
    env: Env, tmp_path: Path
) -> None:
    """Every ticket handler shares one batch handler: a poll holding a ticket's whole
    life (creation, assignment, a reply, waiting, the customer's answer, resolution,
    reopening, closing) reads its clocks once and applies each event to them in order.
    A second ticket gets the same events one batch each: both end with the same clocks."""
    config = policy_file(tmp_path, {"id": "std", "match": {"category": "std"},
                                    "first_response": "PT1H", "next_update": "PT4H",
                                    "resolution": "PT8H"})
    together, alone = new_ticket_id(), new_ticket_id()
    now = utcnow()

    def life(ticket: str) -> list[CloudEvent[Any]]:
        def at(seconds: int) -> datetime:
            return now + timedelta(seconds=seconds)

        return [
            ticket_event(TicketCreated, ticket, category="std", at=now),
            _assigned(ticket, 0, at(1)),
            ticket_event(TicketCommented, ticket, category="std", at=at(60),
                         comment=comment(at(60))),
            ticket_event(TicketWaitingOnCustomer, ticket, category="std", at=at(70)),
            ticket_event(TicketCustomerReplied, ticket, category="std", at=at(300),
                         comment=comment(at(300), author_type="customer")),
            ticket_event(TicketAcknowledged, ticket, category="std", at=at(400)),
            ticket_event(TicketResolved, ticket, category="std", at=at(900)),
            ticket_event(TicketReopened, ticket, category="std", at=at(1000)),
            ticket_event(TicketClosed, ticket, category="std", at=at(2000)),
        ]

    def records(events: list[CloudEvent[Any]], first: int) -> list[ConsumerRecord[bytes, bytes]]:
        return [ConsumerRecord(f"{env.prefix}{e.data.topic}", 0, first + n, 0, 0,
                               e.subject.encode(), e.model_dump_json().encode(), None, 0, 0,
                               ()) for n, e in enumerate(events)]

    async with serving(env, settings(env, config), consumer_ready=False) as svc:
        runner = svc.runtime.runner
        assert runner is not None
        assert await runner._apply_batch("one poll", records(life(together), 0))
        for n, event in enumerate(life(alone)):
            assert await runner._apply_batch("one event", records([event], 100 + n))
        ended = [sorted((c["name"], c["cycle"], c["status"], c["level"], c["met_at"],
                         c["stopped_at"], c["due_at"]) for c in await clocks(svc, ticket))
                 for ticket in (together, alone)]
    assert ended[0] == ended[1]
    assert [(name, cycle, status) for name, cycle, status, *_ in ended[0]] == [
        ("acknowledgement", 0, "met"), ("first_response", 0, "met"),  # the public reply
        ("next_update", 0, "stopped"), ("resolution", 0, "met"), ("resolution", 1, "stopped")]
