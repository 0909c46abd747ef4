"""A run of creations in one consumer batch: every ticket's clocks start once."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from aiokafka import ConsumerRecord, TopicPartition

from escalator.shared.events import (
    CloudEvent,
    Holder,
    Severity,
    TicketAcknowledged,
    TicketAssigned,
    TicketCreated,
    utcnow,
)
from tests.sla_timer.helpers import (
    clocks,
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
