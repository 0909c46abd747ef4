"""Notifier test kit: a real webhook receiver, event factories, fast retry settings."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from escalator.notifier.settings import NotifierSettings
from escalator.shared.events import (
    CloudEvent,
    Contact,
    Customer,
    EventData,
    Holder,
    SlaBreached,
    TicketAssigned,
    TicketEscalated,
    TicketSnapshot,
    utcnow,
)
from tests.support import Env, free_port, produce, wait_until

S = TypeVar("S", bound=TicketSnapshot)

ALICE = Holder(agent_id="alice", name="Alice Moreau", email="alice@helpdesk.example",
               team="support-l1")
CHEN = Holder(agent_id="chen", name="Chen Wei", email="chen@helpdesk.example", team="support-l2")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def ticket_id(self) -> str:
        return self.headers.get("x-escalator-ticket") or str(self.json()["event"]["subject"])


@dataclass
class Receiver:
    """A webhook endpoint on a free port, in the test's event loop.

    Behaviour is scripted per ticket, so one notifier run can exercise several outcomes
    at once: ``script[ticket]`` holds the status codes for that ticket's next requests
    (then 200); ``delays[ticket]`` the seconds to stall first, to provoke timeouts;
    while ``hold`` is given and not set, every request waits for it.
    """

    port: int = field(default_factory=free_port)
    script: dict[str, list[int]] = field(default_factory=dict)
    delays: dict[str, list[float]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    hold: asyncio.Event | None = None
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def about(self, ticket_id: str) -> list[Received]:
        return [r for r in self.requests if r.ticket_id == ticket_id]

    async def _handle(self, request: Request) -> PlainTextResponse:
        received = Received(request.url.path, dict(request.headers), await request.body())
        self.requests.append(received)
        if self.hold is not None:
            await self.hold.wait()
        delays = self.delays.get(received.ticket_id)
        if delays:
            await asyncio.sleep(delays.pop(0))
        script = self.script.get(received.ticket_id)
        status = script.pop(0) if script else 200
        return PlainTextResponse("ok" if status < 300 else "nope", status_code=status)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        await wait_until(lambda: self._server is not None and self._server.started,
                         message="receiver did not start")

    async def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)


def notifier_settings(env: Env, **overrides: Any) -> NotifierSettings:
    """Settings with retries in tens of milliseconds, so failure paths test quickly."""
    values: dict[str, Any] = {
        "consumer_group": f"{env.prefix}notifier",
        "delivery_max_attempts": 3,
        "delivery_backoff_seconds": 0.05,
        "delivery_backoff_max_seconds": 0.2,
        "webhook_timeout_seconds": 2.0,
        "delivery_lease_seconds": 5.0,
        "smtp_timeout_seconds": 2.0,
        "webhook_private_allowed": ["127.0.0.1"],
        "breaker_failures": 50,
        "dispatcher_idle_seconds": 0.2,
    }
    values.update(overrides)
    return env.settings(NotifierSettings, **values)


def new_ticket_id() -> str:
    return str(uuid.uuid4())


def assigned(ticket_id: str | None = None, **overrides: Any) -> CloudEvent[TicketAssigned]:
    values: dict[str, Any] = {
        "ticket_id": ticket_id or new_ticket_id(), "severity": "high", "path": "standard",
        "level": 0, "level_name": "L1 front line", "assignee": ALICE,
        "strategy": "round_robin", "reason": "first available agent of support-l1",
    }
    values.update(overrides)
    return CloudEvent.wrap(TicketAssigned(**values), source="/test")


def escalated(ticket_id: str | None = None) -> CloudEvent[TicketEscalated]:
    return CloudEvent.wrap(TicketEscalated(
        ticket_id=ticket_id or new_ticket_id(), severity="high", path="standard",
        kind="functional", trigger="sla_breach", from_level=0, from_level_name="L1 front line",
        to_level=1, to_level_name="L2 specialists", from_assignee=ALICE, to_assignee=CHEN,
        reason="first_response breached",
    ), source="/test")


def breached(ticket_id: str | None = None) -> CloudEvent[SlaBreached]:
    now = utcnow()
    return CloudEvent.wrap(SlaBreached(
        ticket_id=ticket_id or new_ticket_id(), clock="first_response", policy="high",
        target_seconds=3600, started_at=now - timedelta(hours=1, seconds=12),
        due_at=now - timedelta(seconds=12), fired_at=now, severity="high",
        lateness_seconds=12,
    ), source="/test")


async def publish(env: Env, event: CloudEvent[Any]) -> None:
    """Produce ``event`` the way the outbox relay does: structured JSON, key = ticket id."""
    data: EventData = event.data
    await produce(env.broker.bootstrap, f"{env.prefix}{data.topic}",
                  event.model_dump_json().encode(), key=event.subject.encode())


CUSTOMER = Customer(
    email="ana@client.example", name="Ana Sousa", tier="gold", language="pt",
    csm=Contact(name="Carla CSM", email="carla@helpdesk.example"),
    account_executive=Contact(name="Aaron AE", email="aaron@helpdesk.example"),
)


def snapshot(model: type[S], ticket_id: str | None = None, **overrides: Any) -> CloudEvent[S]:
    """A ticket event as ingest would publish it (any ``TicketSnapshot`` subclass)."""
    now = utcnow()
    values: dict[str, Any] = {
        "ticket_id": ticket_id or new_ticket_id(), "external_id": "EXT-1", "channel": "email",
        "subject": "Invoices fail to export", "description": "It breaks.", "severity": "high",
        "status": "open", "customer": CUSTOMER, "created_at": now, "updated_at": now,
        "language": "pt",
    }
    values.update(overrides)
    return CloudEvent.wrap(model(**values), source="/test")


@dataclass
class Mailbox:
    """A real SMTP server (aiosmtpd, in its own thread) that keeps what it receives."""

    port: int = field(default_factory=free_port)
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]
