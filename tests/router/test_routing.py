"""Routing through the real broker: tickets in on ``tickets``/``sla``, decisions out on
``assignments``, observed through the API and the topic."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from escalator.router.deferred import count_pending_moves
from escalator.router.main import SPEC
from escalator.router.models import PendingMove
from escalator.router.settings import RouterSettings
from escalator.shared.events import Severity
from tests.router.factories import (
    TWO_LEVELS,
    assignment_when,
    breached,
    closed,
    created,
    outbox_events,
    outbox_types,
    processed,
    send,
    updated,
    write_config,
)
from tests.support import Env, RunningService, free_port, read_topic, running, wait_until


async def test_least_loaded_available_agent_with_capacity(env: Env, tmp_path: Path) -> None:
    """Also: the same ticket.created delivered twice assigns once, and a close frees a slot.

    One test because the broker takes seconds to admit a new consumer to its group."""
    settings = env.settings(RouterSettings, config_file=write_config(tmp_path, TWO_LEVELS))
    async with running(SPEC, settings) as svc:

        async def route(ticket_id: str, twice: bool = False) -> str | None:
            # One at a time: different tickets travel on different partitions.
            raw = await send(env, created(ticket_id))
            if twice:
                await send(env, created(ticket_id), raw=raw)
            assignee = (await assignment_when(svc, ticket_id))["assignee"]
            return assignee["agent_id"] if assignee else None

        # a0 is unavailable; a1 wins the 0-0 tie by id; then the less loaded one.
        assert await route("t0", twice=True) == "a1"
        assert [await route(f"t{n}") for n in range(1, 4)] == ["a2", "a1", "a2"]
        assert await route("t4-full") is None  # a0 unavailable, a1 and a2 at capacity
        unassigned = await assignment_when(svc, "t4-full")
        assert unassigned["status"] == "open" and unassigned["level_name"] == "L1"
        assert unassigned["history"][0]["reason"] == (
            "no agent available in l1: 1 unavailable, 2 at capacity")

        await send(env, closed("t0"))
        await wait_until(lambda: _status(svc, "t0", "closed"), message="t0 closed")
        # The close came after both copies on t0's partition: the copy changed nothing.
        assert len((await assignment_when(svc, "t0"))["history"]) == 1
        assert await outbox_types(svc, "t0") == ["ticket.assigned"]
        assert await route("t5") == "a1"  # t0's close freed a slot

        agents = (await svc.client.get("/v1/agents", params={"team": "l1"})).json()["items"]
        assert {a["id"]: a["open_assignments"] for a in agents} == {"a0": 0, "a1": 2, "a2": 2}

        records = await read_topic(env.broker.bootstrap, f"{env.prefix}assignments", count=7)
        assert len(records) == 7  # six assignments and one "nobody can take it"
        events = {r.key.decode(): json.loads(r.value) for r in records
                  if json.loads(r.value)["type"] == "ticket.assigned"}
        queued = [json.loads(r.value)["data"] for r in records
                  if json.loads(r.value)["type"] == "ticket.unassignable"]
        assert [(q["ticket_id"], q["team"], q["level_name"]) for q in queued] == [
            ("t4-full", "l1", "L1")]
        first = events["t0"]
        assert first["type"] == "ticket.assigned" and first["subject"] == "t0"
        assert first["data"]["assignee"] | {"agent_id": "a1", "name": "Bob",
                                            "email": "bob@desk.example", "team": "l1"
                                            } == first["data"]["assignee"]
        assert first["data"]["strategy"] == "least_loaded"
        assert first["data"]["reason"] == "least loaded available agent in l1 (0 open)"
        assert events["t4-full"]["data"]["assignee"] is None
        assert events["t4-full"]["data"]["reason"].startswith("no agent available in l1")


async def _status(svc: RunningService, ticket_id: str, status: str) -> bool:
    response = await svc.client.get(f"/v1/assignments/{ticket_id}")
    return bool(response.json()["status"] == status)


async def _severity(svc: RunningService, ticket_id: str, severity: str) -> bool:
    response = await svc.client.get(f"/v1/assignments/{ticket_id}")
    return response.status_code == 200 and bool(response.json()["severity"] == severity)


async def test_breach_escalates_and_reassigns_then_stays_at_top(env: Env, tmp_path: Path) -> None:
    settings = env.settings(RouterSettings, config_file=write_config(tmp_path, TWO_LEVELS))
    async with running(SPEC, settings) as svc:
        await send(env, created("t1"))
        await send(env, updated("t1", severity=Severity.critical))
        # Routed first: the breach travels on another topic, so nothing orders the two.
        await wait_until(lambda: _severity(svc, "t1", "critical"), message="t1 critical")
        await send(env, breached("t1"))
        escalated = await assignment_when(svc, "t1", history=3)
        assert escalated["level"] == 1 and escalated["level_name"] == "L2"
        assert escalated["assignee"]["agent_id"] == "b1"
        assert [(h["action"], h["level"], h["agent_id"], h["trigger"])
                for h in escalated["history"]] == [
            ("assigned", 0, "a1", "ticket_created"),
            ("escalated", 1, "b1", "sla_breach"),
            ("assigned", 1, "b1", "sla_breach"),
        ]

        records = await read_topic(env.broker.bootstrap, f"{env.prefix}assignments", count=3)
        events = [json.loads(r.value) for r in records]
        assert [e["type"] for e in events] == ["ticket.assigned", "ticket.escalated",
                                               "ticket.assigned"]
        move = events[1]["data"]
        assert (move["kind"], move["trigger"], move["from_level"], move["to_level"]) == (
            "hierarchical", "sla_breach", 0, 1)
        assert move["from_assignee"]["agent_id"] == "a1"
        assert move["to_assignee"]["agent_id"] == "b1"
        assert {e["data"]["severity"] for e in events[1:]} == {"critical"}
        assert events[2]["data"]["level"] == 1 and events[2]["data"]["level_name"] == "L2"

        # At the top of the path: the holder keeps it, the history notes it, and an
        # escalation that stays on its level keeps the executives informed.
        await send(env, breached("t1"))
        top = await assignment_when(svc, "t1", history=4)
        assert top["history"][-1]["action"] == "top_level_reached"
        assert top["level"] == 1 and top["assignee"]["agent_id"] == "b1"
        assert await outbox_types(svc, "t1") == ["ticket.assigned", "ticket.escalated",
                                                 "ticket.assigned", "ticket.escalated"]
        stay = (await outbox_events(svc, "t1"))[-1]["data"]
        assert (stay["trigger"], stay["from_level"], stay["to_level"], stay["executive"]) == (
            "sla_breach", 1, 1, True)
        assert stay["from_assignee"] == stay["to_assignee"]
        assert stay["to_assignee"]["agent_id"] == "b1"
        assert stay["reason"].endswith("already at the top of path std: stays with Dee; "
                                       "executives informed"), stay["reason"]

        # A breach for a ticket the router has not routed is kept, and is no error:
        # nothing is emitted until the ticket arrives (the next test).
        ghost = await send(env, breached("ghost"))
        await wait_until(lambda: processed(svc, json.loads(ghost)["id"]),
                         message="ghost breach processed")
        assert (await svc.client.get("/v1/assignments/ghost")).status_code == 404
        assert await outbox_types(svc, "ghost") == []


async def test_a_breach_read_before_its_ticket_moves_it_once_it_is_routed(
    env: Env, tmp_path: Path
) -> None:
    """Nothing orders the sla and tickets topics: a router catching up can read the
    breach first. The move is kept and applied, once, when the ticket has been routed."""
    settings = env.settings(RouterSettings, config_file=write_config(tmp_path, TWO_LEVELS))
    async with running(SPEC, settings) as svc:
        early = await send(env, breached("early"))
        await wait_until(lambda: processed(svc, json.loads(early)["id"]),
                         message="early breach processed")
        assert (await svc.client.get("/v1/assignments/early")).status_code == 404
        assert await _pending_gauges(svc) == (1, True)
        await send(env, created("early"))
        moved = await assignment_when(svc, "early", history=3)
        assert [(h["action"], h["level"], h["agent_id"], h["trigger"])
                for h in moved["history"]] == [
            ("assigned", 0, "a1", "ticket_created"),
            ("escalated", 1, "b1", "sla_breach"),
            ("assigned", 1, "b1", "sla_breach"),
        ]
        async with svc.runtime.sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(PendingMove)) == 0
        assert await _pending_gauges(svc) == (0, False)
        assert await outbox_types(svc, "early") == ["ticket.assigned", "ticket.escalated",
                                                    "ticket.assigned"]


async def _pending_gauges(svc: RunningService) -> tuple[int, bool]:
    """(kept moves, whether the oldest has an age) as /metrics shows them after a
    refresh, which the gauge worker runs every 15 s."""
    async with svc.runtime.sessionmaker() as session:
        await count_pending_moves(session)
    text = (await svc.client.get("/metrics")).text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("escalator_router_pending_move")}
    return (int(values["escalator_router_pending_moves"]),
            values["escalator_router_pending_move_age_seconds"] > 0)


async def test_a_roster_change_on_one_replica_steers_the_next_decision_on_another(
    pg_env: Env, tmp_path: Path
) -> None:
    """Each replica caches the roster; the config version row must make a change made
    through any replica's REST apply to the very next decision everywhere."""
    env = pg_env
    settings = env.settings(RouterSettings, config_file=write_config(tmp_path, TWO_LEVELS))
    async with running(SPEC, settings) as first:
        await send(env, created("warm"))
        assert (await assignment_when(first, "warm"))["assignee"]["agent_id"] == "a1"
        # Another replica (its own port; its consumer races the first one, which is fine:
        # whichever decides must see the change).
        other = settings.model_copy(update={"port": free_port()})
        async with running(SPEC, other) as second:
            change = await second.client.put("/v1/agents/a2", json={
                "name": "Cem", "email": "cem@desk.example", "team": "l1", "available": False})
            assert change.status_code == 200, change.text
            # Least-loaded would pick a2 (0 open) over a1 (1 open) without the change.
            await send(env, created("after-change"))
            decided = await assignment_when(first, "after-change")
        assert decided["assignee"]["agent_id"] == "a1", decided
