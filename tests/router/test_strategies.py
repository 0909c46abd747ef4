"""Strategies, shifts, path rules, no ping-pong and explanations, through the real broker.

One running service per test: the broker takes seconds to admit a consumer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from escalator.router.main import SPEC
from escalator.router.settings import RouterSettings
from escalator.shared.events import Customer, utcnow
from tests.router.factories import (
    assignment_when,
    breached,
    created,
    escalation_requested,
    outbox_events,
    send,
    write_config,
)
from tests.support import Env, running

ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def shift_around_now(zone: str, *, on: bool) -> list[dict[str, Any]]:
    """A daily two-hour shift around now (or twelve hours away) in ``zone``."""
    local = utcnow().astimezone(ZoneInfo(zone)) + timedelta(hours=0 if on else 12)
    start, end = local - timedelta(hours=1), local + timedelta(hours=1)
    return [{"days": ALL_DAYS, "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}]


def agent(id_: str, team: str, **extra: Any) -> dict[str, Any]:
    return {"id": id_, "name": id_.upper(), "email": f"{id_}@desk.example", "team": team,
            **extra}


ROUTER: dict[str, Any] = {
    "teams": [{"id": "fl", "name": "Front line", "lead": "sup"},
              {"id": "spec", "name": "Specialists", "lead": "sup"},
              {"id": "leads", "name": "Leads"},
              {"id": "night", "name": "Night desk", "lead": "sup"},
              {"id": "execs", "name": "Executives"}],
    "agents": [
        agent("f1", "fl"),
        agent("f2", "fl", timezone="Asia/Tokyo", shifts=shift_around_now("Asia/Tokyo", on=True)),
        agent("f3", "fl", timezone="America/New_York",
              shifts=shift_around_now("America/New_York", on=False)),
        agent("s1", "spec", role="specialist", skills=["billing"], languages=["en"]),
        agent("s2", "spec", role="specialist", skills=["billing"], languages=["pt"]),
        agent("s3", "spec", role="specialist", languages=["pt", "en"]),
        agent("sup", "leads", role="supervisor"),
        agent("n1", "night", available=False),
        agent("ex1", "execs", role="executive"),
        agent("ex2", "execs", role="executive"),
    ],
    "escalation_paths": [
        {"id": "std", "name": "Standard", "default": True, "repeat": 1, "levels": [
            {"name": "L1", "team": "fl", "strategy": "round_robin", "ack_timeout_seconds": 300},
            {"name": "L2", "team": "spec", "strategy": "skills"},
            {"name": "L3", "team": "leads", "kind": "hierarchical"},
            {"name": "L4", "role": "executive", "kind": "hierarchical"}]},
        {"id": "vip", "name": "VIP", "levels": [{"name": "V1", "team": "spec"}]},
        {"id": "thin", "name": "Thin", "on_empty": "skip", "levels": [
            {"name": "Night", "team": "night"}, {"name": "Leads", "team": "leads"}]},
    ],
    "path_rules": [
        {"id": "phone", "path": "thin", "match": {"channel": "phone"}},
        {"id": "vip", "path": "vip", "match": {"tier": ["enterprise", "gold"],
                                               "executive": False}},
    ],
}


async def test_strategies_triggers_and_explanations(env: Env, tmp_path: Path) -> None:
    settings = env.settings(RouterSettings, config_file=write_config(tmp_path, ROUTER))
    async with running(SPEC, settings) as svc:

        async def routed(ticket_id: str, history: int = 1, **overrides: Any) -> dict[str, Any]:
            await send(env, created(ticket_id, **overrides))
            return await assignment_when(svc, ticket_id, history)

        def who(body: dict[str, Any]) -> str | None:
            return body["assignee"]["agent_id"] if body["assignee"] else None

        # Round-robin over the on-shift agents: f3 is off shift in New York, f2 on in Tokyo.
        rr = [await routed(f"rr{n}", language="pt", category="billing") for n in range(4)]
        assert [who(b) for b in rr] == ["f1", "f2", "f1", "f2"]
        why = {c["agent_id"]: c for c in rr[0]["candidates"]}
        assert why["f3"]["reason"] == "off shift (America/New_York)" and not why["f3"]["picked"]
        assert why["f2"]["reason"] == "not their turn" and why["f1"]["picked"]
        assert rr[0]["strategy"] == "round_robin" and rr[0]["rule"] is None
        first = (await outbox_events(svc, "rr0"))[0]["data"]
        assert first["ack_timeout_seconds"] == 300 and first["supervisor"]["agent_id"] == "sup"
        assert first["candidates"][0]["agent_id"] == "f1" and first["rule"] is None

        # An SLA breach moves rr0 up to L2: the skills strategy wants Portuguese and billing.
        await send(env, breached("rr0"))
        up = await assignment_when(svc, "rr0", history=3)
        assert who(up) == "s2" and up["level_name"] == "L2" and up["strategy"] == "skills"
        why = {c["agent_id"]: c["reason"] for c in up["candidates"]}
        assert why == {"s1": "does not speak 'pt'", "s3": "lacks skill 'billing'",
                       "s2": "best skills match in spec: speaks 'pt' and has skill 'billing' "
                             "(0 open)"}
        # The acknowledgement clock is the ack timeout.
        await send(env, breached("rr1", clock="acknowledgement"))
        acked = await assignment_when(svc, "rr1", history=3)
        assert acked["history"][1]["trigger"] == "ack_timeout" and acked["level"] == 1

        # No ping-pong: back to L1 by hand, rr0 does not return to f1.
        write = "/v1/tickets/rr0/escalate"
        back = await svc.client.post(write, json={"level": "L1", "reason": "wrong team"})
        assert back.status_code == 200 and back.json()["assignee"]["agent_id"] == "f2"
        again = await svc.client.post(write, json={"level": "L2", "reason": "needs billing"})
        assert again.json()["assignee"]["agent_id"] == "s3"
        view = await assignment_when(svc, "rr0", history=7)
        why = {c["agent_id"]: c["reason"] for c in view["candidates"]}
        assert why["s2"] == "held this ticket before (no ping-pong)"
        assert view["previous_holders"] == ["f1", "s2", "f2", "s3"]
        assert view["history"][-2]["trigger"] == "manual"
        # ...unless nobody else can take it: the leads team is one person.
        leads = {"kind": "functional", "team": "leads", "reason": "authority"}
        lead = await svc.client.post(write, json=leads)
        assert lead.json()["assignee"]["agent_id"] == "sup"
        assert "held it before" not in (await svc.client.get("/v1/assignments/rr0")
                                        ).json()["reason"]
        last = await svc.client.post(write, json={"level": "L2", "reason": "back"})
        assert last.json()["assignee"]["agent_id"] == "s1"  # the one not yet tried
        await svc.client.post(write, json=leads)
        final = (await svc.client.get("/v1/assignments/rr0")).json()
        assert who(final) == "sup"
        assert final["reason"].endswith("held it before, but nobody else can take it")
        for body, field in (({"kind": "functional", "reason": "x"}, "team"),
                            ({"level": "L9", "reason": "x"}, "L9"),
                            ({"kind": "functional", "team": "night", "reason": "x"}, "night"),
                            ({"kind": "hierarchical"}, "reason")):
            bad = await svc.client.post(write, json=body)
            assert bad.status_code == 422 and field in bad.text, bad.text
        assert (await svc.client.post("/v1/tickets/nope/escalate",
                                      json={"kind": "hierarchical", "reason": "x"})
                ).status_code == 404

        # A customer asks for a manager: one level up, hierarchical.
        await send(env, escalation_requested("rr2", "hierarchical", tier="standard"))
        asked = await assignment_when(svc, "rr2", history=3)
        assert asked["level"] == 1 and asked["history"][1]["trigger"] == "escalation_requested"

        # Cancellation threat: straight to the executives, the account's sponsor brought in.
        await send(env, escalation_requested("rr3", "executive", sponsor="ex2@desk.example"))
        boss = await assignment_when(svc, "rr3", history=3)
        assert who(boss) == "ex2" and boss["level_name"] == "L4" and boss["executive"], boss
        moved = [e for e in await outbox_events(svc, "rr3") if e["type"] == "ticket.escalated"]
        assert moved[0]["data"]["trigger"] == "executive" and moved[0]["data"]["executive"]
        assert "executive sponsor Sponsor <ex2@desk.example>" in moved[0]["data"]["reason"]
        assert "the customer's executive sponsor EX2" in boss["reason"]
        # The same threat read before its ticket: kept, then applied once it is routed.
        await send(env, escalation_requested("rr9", "executive", sponsor="ex2@desk.example"))
        late = await routed("rr9", history=3, language="pt", category="billing")
        assert who(late) == "ex2" and late["level_name"] == "L4" and late["executive"], late
        assert [h["trigger"] for h in late["history"]] == [
            "ticket_created", "executive", "executive"]

        # The executive flag on a new ticket starts it at the executive level; the top
        # level repeats once (to someone else), then stays.
        ex = await routed("ex", executive=True)
        assert ex["level_name"] == "L4" and who(ex) == "ex1" and ex["executive"]
        await send(env, breached("ex"))
        repeat = await assignment_when(svc, "ex", history=3)
        assert who(repeat) == "ex2" and repeat["history"][1]["trigger"] == "repeat", repeat
        await send(env, breached("ex"))
        stay = await assignment_when(svc, "ex", history=4)
        assert stay["history"][-1]["action"] == "top_level_reached" and who(stay) == "ex2"

        # Path rules: first match wins; an empty level is queued, told, and skipped.
        vip = await routed("vip", customer=Customer(email="a@b.example", name="A",
                                                    tier="Gold"))
        assert vip["path"] == "vip" and vip["rule"] == "vip"
        thin = await routed("thin", history=3, channel="phone",
                            customer=Customer(email="a@b.example", name="A", tier="gold"))
        assert thin["rule"] == "phone" and thin["level_name"] == "Leads" and who(thin) == "sup"
        events = await outbox_events(svc, "thin")
        assert [e["type"] for e in events] == ["ticket.assigned", "ticket.unassignable",
                                               "ticket.escalated", "ticket.assigned"]
        queued = events[1]["data"]
        assert queued["team"] == "night" and queued["supervisor"]["agent_id"] == "sup"
        assert queued["reason"] == "no agent available in night: 1 unavailable; queued on night"
        assert events[2]["data"]["trigger"] == "empty_level"

        # Loads kept from the decisions: every open ticket counted once.
        agents = (await svc.client.get("/v1/agents")).json()["items"]
        loads = {a["id"]: a["open_assignments"] for a in agents if a["open_assignments"]}
        assert sum(loads.values()) == 8 and loads["sup"] == 2 and loads["ex2"] == 3, loads
