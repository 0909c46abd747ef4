"""The timer loop fires warnings and breaches on time, once, judged by event time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from escalator.shared.events import TicketAcknowledged, TicketCreated, TicketResolved, utcnow
from tests.sla_timer.helpers import (
    clock,
    new_ticket_id,
    parse,
    policy_file,
    send,
    serving,
    settings,
    sla_events,
)
from tests.support import Env, wait_until


async def test_warning_then_breach_at_deadline_then_answer_after_breach(
    env: Env, tmp_path: Path
) -> None:
    config = policy_file(tmp_path, {"id": "fast", "match": {"severity": "high"},
                                    "first_response": "PT1.5S", "warning_at": 0.5})
    async with serving(env, settings(env, config)) as svc:
        ticket_id = new_ticket_id()
        created = await send(env, TicketCreated, ticket_id)

        warning, breach = await sla_events(env, 2)
        started = created.time
        due = started + timedelta(seconds=1.5)
        assert [warning["type"], breach["type"]] == ["sla.warning", "sla.breached"]
        assert warning["subject"] == breach["subject"] == ticket_id
        assert started + timedelta(seconds=0.75) <= parse(warning["data"]["fired_at"]) < due
        data = breach["data"]
        assert data["clock"] == "first_response" and data["policy"] == "fast"
        assert data["target_seconds"] == 1.5 and data["severity"] == "high"
        assert parse(data["started_at"]) == started and parse(data["due_at"]) == due
        fired = parse(data["fired_at"])
        assert fired >= due + timedelta(seconds=0.2)  # the breach grace
        assert abs(data["lateness_seconds"] - (fired - due).total_seconds()) < 1e-6
        assert data["lateness_seconds"] < 2.0

        state = await clock(svc, ticket_id)
        assert state is not None and state["status"] == "breached"
        assert state["warned_at"] is not None and state["met_at"] is None

        ack = await send(env, TicketAcknowledged, ticket_id)

        async def answered() -> dict[str, Any] | None:
            state = await clock(svc, ticket_id)
            return state if state and state["met_at"] else None

        state = await wait_until(answered, message="acknowledgement not recorded")
        assert state["status"] == "breached" and state["met_after_breach"] is True
        assert parse(state["met_at"]) == ack.time

        metrics = (await svc.client.get("/metrics")).text
        assert 'escalator_sla_breaches_total{clock="first_response",severity="high"}' in metrics
        assert "escalator_sla_fire_lateness_seconds_bucket" in metrics
        assert "escalator_sla_overdue_timers 0.0" in metrics


async def test_event_time_decides_between_answer_and_deadline(env: Env, tmp_path: Path) -> None:
    """Acks and resolves are judged by when they happened, not when they arrive."""
    config = policy_file(tmp_path, {"id": "fast", "first_response": "PT1S"})
    async with serving(env, settings(env, config, breach_grace_seconds=1.5)) as svc:
        in_time, late_delivered, after_due, resolved, unanswered = (
            new_ticket_id() for _ in range(5)
        )
        t0 = utcnow()
        due = t0 + timedelta(seconds=1)
        for ticket_id in (in_time, late_delivered, after_due, resolved, unanswered):
            await send(env, TicketCreated, ticket_id, at=t0)
        await send(env, TicketAcknowledged, in_time, at=t0 + timedelta(seconds=0.1))
        await send(env, TicketResolved, resolved, at=t0 + timedelta(seconds=0.2))

        await wait_until(lambda: utcnow() >= due + timedelta(seconds=0.2), message="clock")
        # Made before the deadline, delivered after it (but within the breach grace).
        await send(env, TicketAcknowledged, late_delivered, at=due - timedelta(seconds=0.3))
        # Made after the deadline, delivered before the timer fired.
        await send(env, TicketAcknowledged, after_due, at=due + timedelta(seconds=0.1))

        async def breached(ticket_id: str) -> bool:
            state = await clock(svc, ticket_id)
            return state is not None and state["status"] == "breached"

        await wait_until(lambda: breached(unanswered), message="unanswered clock not breached")

        for ticket_id in (in_time, late_delivered):
            state = await clock(svc, ticket_id)
            assert state is not None
            assert (state["status"], state["breached_at"]) == ("met", None), ticket_id
            assert parse(state["met_at"]) < due and state["remaining_seconds"] > 0
        stopped = await clock(svc, resolved)
        assert stopped is not None and stopped["status"] == "stopped"
        late = await clock(svc, after_due)
        assert late is not None and late["status"] == "breached"
        assert late["met_after_breach"] is True

        events = await sla_events(env, 3, timeout=1.5)
        assert sorted(e["subject"] for e in events) == sorted([after_due, unanswered])
        assert {e["type"] for e in events} == {"sla.breached"}


async def test_restart_fires_overdue_breach_exactly_once(env: Env, tmp_path: Path) -> None:
    config = policy_file(tmp_path, {"id": "fast", "first_response": "PT2S"})
    service_settings = settings(env, config)
    ticket_id = new_ticket_id()
    async with serving(env, service_settings) as svc:
        created = await send(env, TicketCreated, ticket_id)
        assert await wait_until(lambda: clock(svc, ticket_id), message="clock not started")
    due = created.time + timedelta(seconds=2)
    await wait_until(lambda: utcnow() >= due + timedelta(seconds=1), timeout=10,
                     message="deadline")

    async with serving(env, service_settings, consumer_ready=False) as svc:
        (breach,) = await sla_events(env, 1)
        assert breach["subject"] == ticket_id and breach["type"] == "sla.breached"
        assert breach["data"]["lateness_seconds"] >= 1.0
        state = await clock(svc, ticket_id)
        assert state is not None and state["status"] == "breached"
        assert len(await sla_events(env, 2, timeout=1.0)) == 1


async def test_after_downtime_the_backlog_is_read_before_anything_breaches(
    env: Env, tmp_path: Path
) -> None:
    """Acknowledgements that arrived while the service was down were made in time: once
    it is back, they are read before the overdue timers fire, so only the ticket nobody
    answered breaches. Without the read horizon the timer loop, which starts before the
    consumer has joined its group, would breach both."""
    config = policy_file(tmp_path, {"id": "fast", "first_response": "PT2S"})
    service_settings = settings(env, config)
    answered, ignored = new_ticket_id(), new_ticket_id()
    async with serving(env, service_settings) as svc:
        created = await send(env, TicketCreated, answered)
        await send(env, TicketCreated, ignored)
        for ticket_id in (answered, ignored):
            assert await wait_until(lambda t=ticket_id: clock(svc, t), message="no clock")
    # Down: the acknowledgement, made within the target, waits in the topic.
    await send(env, TicketAcknowledged, answered, at=created.time + timedelta(seconds=1))
    due = created.time + timedelta(seconds=2)
    await wait_until(lambda: utcnow() >= due + timedelta(seconds=1), timeout=10,
                     message="deadline")

    async with serving(env, service_settings, consumer_ready=False) as svc:
        (breach,) = await sla_events(env, 1)
        assert breach["subject"] == ignored and breach["type"] == "sla.breached"
        met = await wait_until(lambda: _status(svc, answered, "met"), timeout=30,
                               message="the acknowledgement was never read")
        assert met["met_at"] is not None and met["met_after_breach"] is False
        assert len(await sla_events(env, 2, timeout=2.0)) == 1


async def _status(svc: Any, ticket_id: str, status: str) -> dict[str, Any] | None:
    state = await clock(svc, ticket_id)
    return state if state is not None and state["status"] == status else None
