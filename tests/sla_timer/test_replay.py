"""A ticket's clocks are a function of its events: a second service, with an empty
database and its own consumer group, replays the same topic and rebuilds the same
clocks (ids, cycles, deadlines, elapsed business time, outcomes).

Only ``tickets`` events here: the order between two topics (``assignments``) is not
fixed by the broker, so a replay may interleave them differently.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from escalator.shared.events import (
    TicketAcknowledged,
    TicketCommented,
    TicketCreated,
    TicketCustomerReplied,
    TicketReopened,
    TicketResolved,
    TicketUpdated,
    TicketWaitingOnCustomer,
    utcnow,
)
from tests.sla_timer.helpers import (
    clocks,
    comment,
    new_ticket_id,
    policy_file,
    send,
    serving,
    settings,
)
from tests.support import Env, free_port, wait_until

#: Set when the API is read, not by the events.
NOW_DEPENDENT = {"elapsed_seconds", "remaining_seconds"}


def stable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k not in NOW_DEPENDENT} for c in items]


async def test_replaying_events_rebuilds_the_same_clocks(pg_env: Env, tmp_path: Path) -> None:
    config = policy_file(tmp_path, {
        "id": "full", "match": {"category": "full"}, "first_response": "PT2H",
        "next_update": "PT2H", "resolution": "PT8H", "warning_before": "PT10M",
        "on_level_change": "extend"})
    first = settings(pg_env, config)
    ticket = new_ticket_id()
    # An hour ago, with targets and warnings all still ahead: nothing falls due while
    # the events are read, so neither service can fire a timer between two of them
    # (that would be a real breach, and a race between the two runs, not a replay).
    t = utcnow() - timedelta(hours=1)

    def at(minutes: int) -> Any:
        return t + timedelta(minutes=minutes)

    async with serving(pg_env, first) as svc:
        await send(pg_env, TicketCreated, ticket, at=at(0), category="full")
        await send(pg_env, TicketAcknowledged, ticket, at=at(2), category="full")
        await send(pg_env, TicketWaitingOnCustomer, ticket, at=at(3), category="full")
        await send(pg_env, TicketCustomerReplied, ticket, at=at(13), category="full",
                   comment=comment(at(13), author_type="customer"))
        await send(pg_env, TicketCommented, ticket, at=at(14), category="full",
                   comment=comment(at(14)))
        await send(pg_env, TicketUpdated, ticket, at=at(15), category="full",
                   severity="critical")
        await send(pg_env, TicketResolved, ticket, at=at(20), category="full")
        await send(pg_env, TicketReopened, ticket, at=at(30), category="full")

        async def settled() -> list[dict[str, Any]] | None:
            items = await clocks(svc, ticket)
            return items if any(c["name"] == "resolution" and c["cycle"] == 1
                                for c in items) else None

        original = await wait_until(settled, message="clocks not built")
        second = first.model_copy(update={
            "port": free_port(), "db_schema": f"{first.db_schema}_replay",
            "consumer_group": f"{first.consumer_group}-replay"})
        async with serving(pg_env, second, consumer_ready=False) as replica:
            async def rebuilt() -> list[dict[str, Any]] | None:
                items = await clocks(replica, ticket)
                return items if len(items) == len(original) else None

            replayed = await wait_until(rebuilt, timeout=60, message="replay incomplete")
            original = await clocks(svc, ticket)

    assert stable(replayed) == stable(original)
    names = {(c["name"], c["cycle"], c["state"]) for c in original}
    assert names == {("first_response", 0, "met"), ("next_update", 0, "met"),
                     ("next_update", 1, "stopped"), ("resolution", 0, "met"),
                     ("resolution", 1, "running")}
