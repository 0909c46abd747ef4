"""Two router replicas in one consumer group on PostgreSQL, a few thousand tickets:
nothing assigned twice for one trigger, nobody over capacity, round-robin fair."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from escalator.router.main import SPEC
from escalator.router.models import Agent, Assignment
from escalator.router.settings import RouterSettings
from escalator.shared.db import outbox
from tests.router.factories import breached, created, send_many, write_config
from tests.support import Env, RunningService, running, wait_until

#: A few thousand, as the invariants need a real race; routing decides a poll's tickets
#: together, so this takes seconds. ``ROUTER_REPLICA_TICKETS`` changes it.
TICKETS = int(os.environ.get("ROUTER_REPLICA_TICKETS", 2000))
CAPPED, BREACHES, CAPACITY = TICKETS // 4, TICKETS // 8, TICKETS // 40

ROUTER: dict[str, Any] = {
    "teams": [{"id": "rr", "name": "Round robin"}, {"id": "cap", "name": "Capped"},
              {"id": "up", "name": "Next level"}],
    "agents": [
        *({"id": f"r{n:02d}", "name": f"R{n}", "email": f"r{n}@desk.example", "team": "rr",
           "max_open_tickets": 1000} for n in range(10)),
        *({"id": f"c{n}", "name": f"C{n}", "email": f"c{n}@desk.example", "team": "cap",
           "max_open_tickets": CAPACITY} for n in range(5)),
        *({"id": f"u{n}", "name": f"U{n}", "email": f"u{n}@desk.example", "team": "up",
           "max_open_tickets": 1000} for n in range(3)),
    ],
    "escalation_paths": [
        {"id": "fair", "name": "Fair", "default": True, "levels": [
            {"name": "RR", "team": "rr", "strategy": "round_robin"},
            {"name": "Up", "team": "up", "strategy": "least_loaded"}]},
        {"id": "capped", "name": "Capped", "levels": [{"name": "Cap", "team": "cap"}]},
    ],
    "path_rules": [{"id": "phone", "path": "capped", "match": {"channel": "phone"}}],
}


async def _count(svc: RunningService, query: Any) -> int:
    async with svc.runtime.sessionmaker() as session:
        return int(await session.scalar(query) or 0)


async def test_two_replicas_keep_the_invariants(pg_env: Env, tmp_path: Path) -> None:
    config = write_config(tmp_path, ROUTER)
    first = pg_env.settings(RouterSettings, config_file=config)
    second = pg_env.settings(RouterSettings, config_file=config)
    async with running(SPEC, first) as one, running(SPEC, second) as two:
        ids = [f"{n:05d}" for n in range(TICKETS)]
        await send_many(pg_env, [created(i, channel="phone" if n < CAPPED else "api")
                                 for n, i in enumerate(ids)])
        routed = select(func.count()).select_from(Assignment)
        await wait_until(lambda: _all(one, routed, TICKETS), timeout=30 + TICKETS / 5,
                         message="every ticket routed")
        # One breach each for some round-robin tickets: one move each, whoever consumes it.
        await send_many(pg_env, [breached(i) for i in ids[CAPPED:CAPPED + BREACHES]])
        moved = select(func.count()).select_from(Assignment).where(Assignment.level == 1)
        await wait_until(lambda: _all(two, moved, BREACHES), timeout=30 + BREACHES / 5,
                         message="every breach applied")

        async with one.runtime.sessionmaker() as session:
            per_ticket = dict((await session.execute(
                select(outbox.c.key, func.count()).where(outbox.c.event_type == "ticket.assigned")
                .group_by(outbox.c.key))).all())
            agents = list((await session.scalars(select(Agent))).all())
            held = dict((await session.execute(
                select(Assignment.agent_id, func.count()).where(Assignment.status == "open")
                .group_by(Assignment.agent_id))).all())
            firsts = dict((await session.execute(text(
                "SELECT agent_id, count(*) FROM assignment_history WHERE action = 'assigned' "
                "AND trigger = 'ticket_created' AND level_name = 'RR' GROUP BY agent_id"))).all())
        breached_ids = set(ids[CAPPED:CAPPED + BREACHES])
        assert {k: v for k, v in per_ticket.items()
                if v != (2 if k in breached_ids else 1)} == {}
        assert len(per_ticket) == TICKETS
        for agent in agents:
            assert agent.open_tickets <= agent.max_open_tickets, agent.id
            assert agent.open_tickets == held.get(agent.id, 0), agent.id
        assert sum(held.get(f"c{n}", 0) for n in range(5)) == 5 * CAPACITY  # full, never over
        assert held[None] == CAPPED - 5 * CAPACITY  # the rest queued, unassigned
        turns = [firsts.get(f"r{n:02d}", 0) for n in range(10)]
        assert sum(turns) == TICKETS - CAPPED and max(turns) - min(turns) <= 1, turns


async def _all(svc: RunningService, query: Any, expected: int) -> bool:
    return await _count(svc, query) >= expected
