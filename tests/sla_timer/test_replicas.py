"""Two replicas on one PostgreSQL schema share the timers without firing one twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from escalator.shared.events import TicketCreated, utcnow
from tests.sla_timer.helpers import (
    clock,
    new_ticket_id,
    policy_file,
    send,
    serving,
    settings,
    sla_events,
)
from tests.support import Env, free_port, wait_until


async def test_two_replicas_breach_each_clock_once(pg_env: Env, tmp_path: Path) -> None:
    config = policy_file(tmp_path, {"id": "fast", "first_response": "PT1S",
                                    "warning_at": 0.5})
    first = settings(pg_env, config)
    second = first.model_copy(update={"port": free_port()})
    async with serving(pg_env, first) as one, serving(pg_env, second) as two:
        tickets = [new_ticket_id() for _ in range(8)]
        at = utcnow()
        for ticket_id in tickets:
            await send(pg_env, TicketCreated, ticket_id, at=at)

        async def all_breached() -> bool:
            for ticket_id in tickets:
                state = await clock(one, ticket_id)
                if state is None or state["status"] != "breached":
                    return False
            return True

        await wait_until(all_breached, message="not every clock breached")
        events = await sla_events(pg_env, 2 * len(tickets) + 1, timeout=2.0)
        breaches = Counter(e["subject"] for e in events if e["type"] == "sla.breached")
        assert breaches == Counter(tickets)
        # A warning is skipped when its clock is started too late for it (the group may
        # still be rebalancing when the tickets arrive), but it never fires twice.
        warnings = Counter(e["subject"] for e in events if e["type"] == "sla.warning")
        assert set(warnings.values()) <= {1}
        assert (await two.client.get(f"/v1/tickets/{tickets[0]}/clocks")).status_code == 200
