"""New tickets a batch at a time, through the real consumer runner (no broker needed):
one key's events keep their order, copies route once, and the decisions of one batch see
each other's slots (capacity, round-robin turns, loads)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalator.router.config import load_on_startup
from escalator.router.main import SPEC
from escalator.router.models import Agent, Assignment, AssignmentHistory
from escalator.router.settings import RouterSettings
from escalator.shared.app import Runtime
from escalator.shared.consumer import ConsumerRunner
from escalator.shared.db import make_engine, make_sessionmaker, outbox
from escalator.shared.events import CloudEvent, EventData
from escalator.shared.migrations import upgrade
from escalator.shared.outbox import Relay
from tests.router.factories import closed, created, write_config
from tests.support import Env

ROUTER: dict[str, Any] = {
    "teams": [{"id": "rr", "name": "Turns"}, {"id": "cap", "name": "Capped"}],
    "agents": [
        *({"id": f"r{n}", "name": f"R{n}", "email": f"r{n}@desk.example", "team": "rr"}
          for n in range(3)),
        {"id": "c0", "name": "C0", "email": "c0@desk.example", "team": "cap",
         "max_open_tickets": 1},
    ],
    "escalation_paths": [
        {"id": "turns", "name": "Turns", "default": True,
         "levels": [{"name": "RR", "team": "rr", "strategy": "round_robin"}]},
        {"id": "capped", "name": "Capped", "levels": [{"name": "Cap", "team": "cap"}]},
    ],
    "path_rules": [{"id": "phone", "path": "capped", "match": {"channel": "phone"}}],
}


@pytest.fixture
async def sessions(env: Env, tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    settings = env.settings(RouterSettings, config_file=write_config(tmp_path, ROUTER))
    engine = make_engine(settings)
    await upgrade(engine, settings, SPEC.migrations)
    sessionmaker = make_sessionmaker(engine)
    await load_on_startup(Runtime(settings, engine, sessionmaker, Relay(settings, sessionmaker),
                                  {}))
    try:
        yield sessionmaker
    finally:
        await engine.dispose()


def _records(*items: EventData | CloudEvent[Any]) -> list[ConsumerRecord]:
    """One partition's records, in order (a CloudEvent given twice is a redelivery)."""
    records = []
    for offset, item in enumerate(items):
        event = item if isinstance(item, CloudEvent) else CloudEvent.wrap(item, source="/test")
        value, key = event.model_dump_json().encode(), event.subject.encode()
        records.append(ConsumerRecord("tickets", 0, offset, 0, 0, key, value, None, len(key),
                                      len(value), ()))
    return records


async def test_one_batch_routes_in_order_and_each_decision_sees_the_ones_before(
    sessions: async_sessionmaker[AsyncSession], env: Env
) -> None:
    settings = env.settings(RouterSettings)
    runner = ConsumerRunner(settings, sessions, SPEC.handlers)  # type: ignore[arg-type]
    tp = TopicPartition("tickets", 0)
    # t1 created twice under two event ids (a re-emitted creation), t2 created and closed
    # in the same batch (the close splits the run of creations), two tickets for an
    # agent who has room for one.
    batch = _records(created("t1"), created("t2"), created("t1"), closed("t2"), created("t3"),
                     created("p1", channel="phone"), created("p2", channel="phone"))
    assert await runner._apply_batch(tp, batch)

    async with sessions() as session:
        held = dict((await session.execute(
            select(Assignment.ticket_id, Assignment.agent_id))).all())
        status = dict((await session.execute(
            select(Assignment.ticket_id, Assignment.status))).all())
        loads = dict((await session.execute(select(Agent.id, Agent.open_tickets))).all())
        history = (await session.scalars(select(AssignmentHistory)
                                         .order_by(AssignmentHistory.id))).all()
        assigned = await session.scalar(select(func.count()).select_from(outbox)
                                        .where(outbox.c.event_type == "ticket.assigned"))
    # Round-robin turns in the order the tickets came, across the split run.
    assert (held["t1"], held["t2"], held["t3"]) == ("r0", "r1", "r2")
    assert status["t2"] == "closed" and assigned == 5 and len(history) == 5
    # Capacity holds inside one batch: the second phone ticket finds c0 full.
    assert held["p1"] == "c0" and held["p2"] is None
    queued = next(h for h in history if h.ticket_id == "p2")
    assert queued.reason == "no agent available in cap: 1 at capacity"
    assert queued.candidates["reasons"] == ["at capacity (1/1)"]
    assert loads == {"r0": 1, "r1": 0, "r2": 1, "c0": 1}

    # A redelivered batch changes nothing; a later copy of a creation neither.
    assert await runner._apply_batch(tp, batch)
    assert await runner._apply_batch(tp, _records(created("t1"), created("t4")))
    async with sessions() as session:
        assert (await session.get(Assignment, "t4")).agent_id == "r0"  # type: ignore[union-attr]
        assert await session.scalar(select(func.count()).select_from(AssignmentHistory)) == 6
        assert await session.scalar(select(Agent.open_tickets).where(Agent.id == "r0")) == 2
