"""Small factories for sla-timer tests: policy files, ticket events, topic and API reads."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from escalator.shared.events import (
    CloudEvent,
    Comment,
    Customer,
    Holder,
    Severity,
    TicketAssigned,
    TicketCreated,
    TicketSnapshot,
    TicketStatus,
    utcnow,
)
from escalator.sla_timer.main import SPEC
from escalator.sla_timer.settings import SlaTimerSettings
from tests.support import Env, RunningService, produce, read_topic, running, wait_until

#: First in every test file: a far-off clock whose start proves the consumer is serving.
PROBE = {"id": "probe", "match": {"category": "probe"}, "first_response": "PT1H"}


def policy_file(tmp_path: Path, *policies: dict[str, Any]) -> Path:
    path = tmp_path / f"escalator-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump({"sla": {"policies": [PROBE, *policies]}}))
    return path


@contextlib.asynccontextmanager
async def serving(
    env: Env, settings: SlaTimerSettings, *, consumer_ready: bool = True
) -> AsyncIterator[RunningService]:
    """The service, by default once its consumer has joined the group and applies events.

    Joining takes seconds (more when the group's previous member has just left); tests
    with second-long targets must not send their events before that, or the clocks
    would start late. Tests that only need the timer loop and the API skip the wait.
    """
    async with running(SPEC, settings) as svc:
        if not consumer_ready:
            yield svc
            return
        probe = new_ticket_id()
        await send(env, TicketCreated, probe, category="probe")
        await wait_until(lambda: clock(svc, probe), timeout=30, message="consumer not ready")
        yield svc


def settings(env: Env, config: Path, **overrides: Any) -> SlaTimerSettings:
    values: dict[str, Any] = {"config_file": config, "breach_grace_seconds": 0.2}
    values.update(overrides)
    return env.settings(SlaTimerSettings, **values)


def new_ticket_id() -> str:
    return str(uuid.uuid4())


async def send(
    env: Env, model: type[TicketSnapshot], ticket_id: str, *, at: datetime | None = None,
    severity: str = "high", category: str | None = None, **extra: Any,
) -> CloudEvent[Any]:
    """Produce one ticket event on the tickets topic, as ingest's relay would."""
    event = ticket_event(model, ticket_id, at=at, severity=severity, category=category,
                         **extra)
    await produce(env.broker.bootstrap, f"{env.prefix}tickets",
                  event.model_dump_json().encode(), key=ticket_id.encode())
    return event


def ticket_event(
    model: type[TicketSnapshot], ticket_id: str, *, at: datetime | None = None,
    severity: str = "high", category: str | None = None, **extra: Any,
) -> CloudEvent[Any]:
    at = at or utcnow()
    status = {"ticket.acknowledged": TicketStatus.acknowledged, "ticket.resolved":
              TicketStatus.resolved, "ticket.closed": TicketStatus.closed}.get(
        model.event_type, TicketStatus.open)
    data = model(
        ticket_id=ticket_id, external_id=f"ext-{ticket_id}", channel="api",
        subject="Checkout fails", description="Every card payment fails.",
        severity=Severity(severity), status=status, category=category,
        customer=Customer(email="ops@acme.example", name="Acme Ops"),
        created_at=at, updated_at=at, **extra,
    )
    return CloudEvent.wrap(data, source="/test", time=at)


def comment(at: datetime, *, author_type: str = "agent", public: bool = True) -> Comment:
    return Comment(id=str(uuid.uuid4()), author_type=author_type,  # type: ignore[arg-type]
                   author="someone", public=public, body="Looking into it.", created_at=at)


async def send_assigned(env: Env, ticket_id: str, *, at: datetime, level: int,
                        ack_timeout: float | None) -> CloudEvent[Any]:
    """A ``ticket.assigned`` as the router would publish it."""
    data = TicketAssigned(
        ticket_id=ticket_id, severity=Severity.high, path="default", level=level,
        level_name=f"L{level + 1}", strategy="round_robin", reason="test",
        assignee=Holder(agent_id="a1", name="Ada", email="ada@example.test", team="t1"),
        ack_timeout_seconds=ack_timeout,
    )
    event = CloudEvent.wrap(data, source="/test", time=at)
    await produce(env.broker.bootstrap, f"{env.prefix}assignments",
                  event.model_dump_json().encode(), key=ticket_id.encode())
    return event


async def clocks(svc: RunningService, ticket_id: str) -> list[dict[str, Any]]:
    response = await svc.client.get(f"/v1/tickets/{ticket_id}/clocks")
    if response.status_code == 404:
        return []
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["clocks"]
    return result


async def sla_events(env: Env, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    records = await read_topic(env.broker.bootstrap, f"{env.prefix}sla", count=count,
                               timeout=timeout)
    return sorted((json.loads(r.value) for r in records), key=lambda e: e["time"])


async def clock(svc: RunningService, ticket_id: str) -> dict[str, Any] | None:
    """The ticket's first-response clock as the API shows it; None while there is none."""
    response = await svc.client.get(f"/v1/tickets/{ticket_id}/clocks")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    clocks: list[dict[str, Any]] = response.json()["clocks"]
    return next(c for c in clocks if c["name"] == "first_response")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)
