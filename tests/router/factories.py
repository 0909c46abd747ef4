"""Small builders for router tests: a config file, events on the real topics, DB peeks."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from escalator.shared.db import inbox, outbox
from escalator.shared.events import (
    CloudEvent,
    Contact,
    Customer,
    EventData,
    Severity,
    SlaBreached,
    TicketClosed,
    TicketCreated,
    TicketEscalationRequested,
    TicketStatus,
    TicketUpdated,
    utcnow,
)
from tests.support import Env, RunningService, produce, wait_until

TWO_LEVELS: dict[str, Any] = {
    "teams": [
        {"id": "l1", "name": "Front line"},
        {"id": "l2", "name": "Specialists"},
    ],
    "agents": [
        {"id": "a0", "name": "Ann", "email": "ann@desk.example", "team": "l1",
         "available": False},
        {"id": "a1", "name": "Bob", "email": "bob@desk.example", "team": "l1",
         "max_open_tickets": 2},
        {"id": "a2", "name": "Cem", "email": "cem@desk.example", "team": "l1",
         "max_open_tickets": 2},
        {"id": "b1", "name": "Dee", "email": "dee@desk.example", "team": "l2"},
    ],
    "escalation_paths": [
        {"id": "std", "name": "Standard", "default": True, "levels": [
            {"name": "L1", "team": "l1", "kind": "functional"},
            {"name": "L2", "team": "l2", "kind": "hierarchical"},
        ]},
    ],
}


def write_config(tmp_path: Path, router: dict[str, Any]) -> Path:
    path = tmp_path / f"escalator-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump({"router": router}))
    return path


def _snapshot(model: type[Any], ticket_id: str, **overrides: Any) -> Any:
    now = utcnow()
    values: dict[str, Any] = {
        "ticket_id": ticket_id, "external_id": f"x-{ticket_id}", "channel": "api",
        "subject": "Checkout fails", "description": "Every payment fails.",
        "severity": Severity.high, "status": TicketStatus.open,
        "customer": Customer(email="ops@acme.example", name="Acme Ops"),
        "created_at": now, "updated_at": now,
    }
    values.update(overrides)
    return model(**values)


def created(ticket_id: str, **overrides: Any) -> TicketCreated:
    return _snapshot(TicketCreated, ticket_id, **overrides)


def updated(ticket_id: str, **overrides: Any) -> TicketUpdated:
    return _snapshot(TicketUpdated, ticket_id, **overrides)


def closed(ticket_id: str) -> TicketClosed:
    return _snapshot(TicketClosed, ticket_id, status=TicketStatus.closed)


def breached(ticket_id: str, clock: str = "first_response") -> SlaBreached:
    now = utcnow()
    return SlaBreached(
        ticket_id=ticket_id, clock=clock, policy="high", target_seconds=60,
        started_at=now - timedelta(seconds=70), due_at=now - timedelta(seconds=10),
        fired_at=now, severity=Severity.high, lateness_seconds=10,
    )


def escalation_requested(ticket_id: str, kind: str, sponsor: str | None = None,
                         **overrides: Any) -> TicketEscalationRequested:
    customer = Customer(email="ceo@acme.example", name="Acme", tier="enterprise",
                        executive_sponsor=Contact(name="Sponsor", email=sponsor)
                        if sponsor else None)
    return _snapshot(TicketEscalationRequested, ticket_id, kind=kind, customer=customer,
                     requested_by="customer", reason="wants a manager", **overrides)


async def outbox_events(svc: RunningService, ticket_id: str) -> list[dict[str, Any]]:
    """The CloudEvents the router committed for one ticket, in order."""
    async with svc.runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(outbox.c.payload).where(outbox.c.key == ticket_id).order_by(outbox.c.id))
        return [json.loads(p) for p in rows.all()]


def envelope(data: EventData) -> bytes:
    return CloudEvent.wrap(data, source="/test").model_dump_json().encode()


async def send_many(env: Env, items: list[EventData]) -> None:
    """Produce many events with one producer (the bulk tests and the benchmark)."""
    producer = AIOKafkaProducer(bootstrap_servers=env.broker.bootstrap, acks="all",
                                linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(f"{env.prefix}{d.topic}", envelope(d),
                                       key=d.ticket_id.encode()) for d in items]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def send(env: Env, data: EventData, raw: bytes | None = None) -> bytes:
    """Produce ``data`` (or exactly ``raw``) on its topic, keyed by ticket; returns the bytes."""
    value = raw or envelope(data)
    await produce(env.broker.bootstrap, f"{env.prefix}{data.topic}", value,
                  key=data.ticket_id.encode())
    return value


async def assignment_when(
    svc: RunningService, ticket_id: str, history: int = 1
) -> dict[str, Any]:
    """The assignment once it has at least ``history`` entries (waits for the consumer)."""

    async def ready() -> dict[str, Any] | None:
        response = await svc.client.get(f"/v1/assignments/{ticket_id}")
        if response.status_code == 200 and len(response.json()["history"]) >= history:
            body: dict[str, Any] = response.json()
            return body
        return None

    result: dict[str, Any] = await wait_until(
        ready, message=f"assignment of {ticket_id} with {history} history entries")
    return result


async def outbox_types(svc: RunningService, ticket_id: str) -> list[str]:
    """Event types the router committed for one ticket, in order: exact, no time window."""
    async with svc.runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(outbox.c.event_type).where(outbox.c.key == ticket_id).order_by(outbox.c.id)
        )
        return list(rows.all())


async def processed(svc: RunningService, event_id: str) -> bool:
    async with svc.runtime.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(inbox).where(inbox.c.event_id == event_id))
        return bool(count)
