"""A run of creations in one consumer batch: every ticket's clocks start once."""

from __future__ import annotations

from pathlib import Path

from aiokafka import ConsumerRecord, TopicPartition

from escalator.shared.events import TicketCreated
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
