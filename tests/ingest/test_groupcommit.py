"""Group commit: concurrent single-event requests share transactions, yet each is
answered on its own, errors stay with their event, and every ticket's events go out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from escalator.ingest.groupcommit import GroupCommit
from escalator.ingest.inbound import CustomerRef, Inbound
from escalator.ingest.main import SPEC
from escalator.ingest.models import Ticket
from escalator.ingest.service import Outcome
from tests.ingest.helpers import api_event, ingest_settings, ticket_events
from tests.support import Env, running


async def test_concurrent_requests_each_get_their_own_answer(env: Env) -> None:
    async with running(SPEC, ingest_settings(env)) as svc:
        bodies = [api_event(external_id=f"gc-{n}", customer={
            "email": f"gc{n % 3}@acme.example", "name": "GC"}) for n in range(12)]
        # Two more requests for conversations already among them: one ticket each still.
        bodies += [{**bodies[0], "description": "Still failing."},
                   {**bodies[5], "description": "Still failing."}]
        answers = await asyncio.gather(*(svc.client.post("/v1/channels/api/events", json=b)
                                         for b in bodies))
        assert [a.status_code for a in answers] == [202] * len(bodies)
        by_conversation: dict[str, list[dict[str, Any]]] = {}
        for body, answer in zip(bodies, answers, strict=True):
            by_conversation.setdefault(body["external_id"], []).append(answer.json())
        assert len(by_conversation) == 12
        for results in by_conversation.values():
            assert len({r["ticket_id"] for r in results}) == 1
            assert sorted(r["created"] for r in results) == [False] * (len(results) - 1) + [True]
        tickets = {a.json()["ticket_id"] for a in answers}
        assert len(tickets) == 12
        events = await ticket_events(env, 14)
        created = [e["subject"] for e in events if e["type"] == "ticket.created"]
        assert sorted(created) == sorted(tickets)
        assert sum(e["type"] == "ticket.updated" for e in events) == 2
        for ticket_id in tickets:
            got = (await svc.client.get(f"/v1/tickets/{ticket_id}")).json()
            assert got["customer_email"].startswith("gc")


def _inbound(external_id: str, **extra: Any) -> Inbound:
    return Inbound(channel="api", external_id=external_id, subject="Checkout fails",
                   description="Every card payment fails.", mode="replace",
                   customer=CustomerRef(email="ops@acme.example", name="Ops"), **extra)


async def test_a_failing_event_fails_alone(env: Env) -> None:
    async with running(SPEC, ingest_settings(env)) as svc:
        runtime = svc.runtime
        intake = GroupCommit(runtime.sessionmaker, runtime.extras["config"])
        good = [_inbound(f"ok-{n}") for n in range(5)]
        # Not storable (its details cannot be serialized): the whole group's transaction
        # fails, then every event is retried alone.
        bad = _inbound("bad", details={"unserializable": object()})
        results = await asyncio.gather(*(intake.submit(i) for i in [*good[:3], bad, *good[3:]]),
                                       return_exceptions=True)
        assert isinstance(results[3], StatementError)
        stored = [r for i, r in enumerate(results) if i != 3]
        assert all(isinstance(r, Outcome) and r.created for r in stored)
        async with runtime.sessionmaker() as session:
            ids = set(await session.scalars(select(Ticket.external_id)))
            assert ids == {f"ok-{n}" for n in range(5)}
            assert await session.scalar(select(func.count()).select_from(Ticket)) == 5


@pytest.mark.parametrize("size", [1, 3])
async def test_a_lone_or_grouped_event_is_answered_after_commit(env: Env, size: int) -> None:
    async with running(SPEC, ingest_settings(env)) as svc:
        runtime = svc.runtime
        intake = GroupCommit(runtime.sessionmaker, runtime.extras["config"], max_group=2)
        outcomes = await asyncio.gather(*(intake.submit(_inbound(f"c-{n}"))
                                          for n in range(size)))
        async with runtime.sessionmaker() as session:
            for outcome in outcomes:
                assert outcome.created and await session.get(Ticket, outcome.ticket_id)
