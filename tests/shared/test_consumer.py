"""The consumer runner: one effect per event, dead letters for poison, no loss on crash."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from sqlalchemy import func, select, text

from escalator.shared.bus import ensure_topics
from escalator.shared.consumer import ConsumerRunner
from escalator.shared.db import make_engine, make_sessionmaker, outbox
from escalator.shared.events import CloudEvent
from escalator.shared.migrations import upgrade
from tests.shared.factories import envelope, ticket_created, wire
from tests.shared.probe.app import SPEC, ProbeSettings, effect_count, handlers
from tests.support import Env, RunningService, produce, read_topic, running, wait_until


async def count(svc: RunningService, **where: str) -> int:
    async with svc.runtime.sessionmaker() as session:
        return await effect_count(session, **where)


@pytest.fixture
async def probe(env: Env) -> AsyncIterator[RunningService]:
    async with running(SPEC, env.settings(ProbeSettings)) as svc:
        yield svc


async def test_same_event_delivered_twice_has_one_effect(env: Env, probe: RunningService) -> None:
    topic = f"{env.prefix}tickets"
    event = envelope(ticket_created("t-1"))
    marker = envelope(ticket_created("t-1", external_id="marker"))
    for message in (event, event, marker):  # one key, one partition: in this order
        await produce(env.broker.bootstrap, topic, *wire(message))

    await wait_until(lambda: count(probe, event_id=marker.id), message="marker not applied")
    assert await count(probe, event_id=event.id) == 1


async def test_non_cloudevent_is_dead_lettered_and_the_partition_moves_on(
    env: Env, probe: RunningService
) -> None:
    topic = f"{env.prefix}tickets"
    await produce(env.broker.bootstrap, topic, b"\xff not json", key=b"t-2")
    await produce(env.broker.bootstrap, topic, b'{"specversion": "1.0"}', key=b"t-2")
    after = envelope(ticket_created("t-2"))
    await produce(env.broker.bootstrap, topic, *wire(after))

    await wait_until(lambda: count(probe, event_id=after.id), message="next message not applied")
    letters = [json.loads(r.value) for r in
               await read_topic(env.broker.bootstrap, f"{env.prefix}dlq", count=2)]
    assert [letter["reason"] for letter in letters] == ["unparseable", "unparseable"]
    assert letters[0]["value_base64"] is not None and letters[1]["value"] is not None
    assert {letter["origin"]["topic"] for letter in letters} == {topic}
    assert letters[0]["origin"]["offset"] < letters[1]["origin"]["offset"]
    assert letters[0]["service"] == "probe" and "Error" in letters[0]["error"]


async def test_handler_that_keeps_failing_is_dead_lettered_once(
    env: Env, probe: RunningService
) -> None:
    topic = f"{env.prefix}tickets"
    poison = envelope(ticket_created("t-3", subject="poison"))
    after = envelope(ticket_created("t-3"))
    for message in (poison, poison, after):
        await produce(env.broker.bootstrap, topic, *wire(message))

    await wait_until(lambda: count(probe, event_id=after.id), message="next message not applied")
    letters = await read_topic(env.broker.bootstrap, f"{env.prefix}dlq", count=2, timeout=2)
    assert len(letters) == 1
    letter = json.loads(letters[0].value)
    assert letter["reason"] == "handler_failed"
    assert "this ticket always fails" in letter["error"]
    assert json.loads(letter["value"])["id"] == poison.id


async def test_unknown_event_types_are_skipped_not_dead_lettered(
    env: Env, probe: RunningService
) -> None:
    topic = f"{env.prefix}tickets"
    future = {
        "specversion": "1.0", "id": "future-1", "source": "/elsewhere",
        "type": "ticket.teleported.v9", "subject": "t-4",
        "time": "2026-11-23T10:00:00Z", "data": {"anything": True},
    }
    await produce(env.broker.bootstrap, topic, json.dumps(future).encode(), key=b"t-4")
    after = envelope(ticket_created("t-4"))
    await produce(env.broker.bootstrap, topic, *wire(after))

    await wait_until(lambda: count(probe, event_id=after.id), message="next message not applied")
    assert await read_topic(env.broker.bootstrap, f"{env.prefix}dlq", count=1, timeout=1) == []


class Crash(Exception):
    """Stands for the process dying between storing the effect and committing the offset."""


class CrashBeforeCommit(ConsumerRunner):
    async def _commit_polled(self, consumer: object, batches: object) -> None:
        raise Crash


async def test_crash_after_effect_before_offset_commit_is_not_repeated(env: Env) -> None:
    settings = env.settings(ProbeSettings)
    await ensure_topics(settings)
    engine = make_engine(settings)
    await upgrade(engine, settings, SPEC.migrations)
    sessionmaker = make_sessionmaker(engine)
    event = envelope(ticket_created("t-5"))
    await produce(env.broker.bootstrap, f"{env.prefix}tickets", *wire(event))

    async def effects() -> int:
        async with sessionmaker() as session:
            return await effect_count(session, event_id=event.id)

    try:
        with pytest.raises(Crash):
            await asyncio.wait_for(ConsumerRunner.run(CrashBeforeCommit(
                settings, sessionmaker, handlers)), 30)
        assert await effects() == 1

        # Restart: the offset was never committed, so the event comes again.
        runner = ConsumerRunner(settings, sessionmaker, handlers)
        task = asyncio.create_task(runner.run())
        marker = envelope(ticket_created("t-5", external_id="marker"))
        await produce(env.broker.bootstrap, f"{env.prefix}tickets", *wire(marker))

        async def marker_applied() -> int:
            async with sessionmaker() as session:
                return await effect_count(session, event_id=marker.id)

        await wait_until(marker_applied, message="restarted consumer applied nothing")
        runner.stop()
        await asyncio.wait_for(task, 30)
        assert await effects() == 1
    finally:
        await engine.dispose()


def test_event_envelope_round_trips() -> None:
    event = envelope(ticket_created("t-6"))
    value, key = wire(event)
    parsed = CloudEvent.model_validate_json(value)
    assert parsed.id == event.id and key == b"t-6"


def _record(offset: int, event: CloudEvent[Any] | None, raw: bytes = b"") -> ConsumerRecord:
    value, key = wire(event) if event is not None else (raw, b"t-7")
    return ConsumerRecord("tickets", 0, offset, 0, 0, key, value, None, len(key), len(value), ())


async def test_one_batch_mixing_good_duplicate_and_poison_applies_each_good_event_once(
    env: Env,
) -> None:
    """The fast path rolls back at the poison and the careful path redoes the batch:
    nothing from the rolled-back attempt may survive, and nothing good may be lost."""
    settings = env.settings(ProbeSettings)
    engine = make_engine(settings)
    await upgrade(engine, settings, SPEC.migrations)
    sessionmaker = make_sessionmaker(engine)
    seen, first, second = (envelope(ticket_created("t-7")) for _ in range(3))
    poison = envelope(ticket_created("t-7", subject="poison"))
    runner = ConsumerRunner(settings, sessionmaker, handlers)

    async def effects(event: CloudEvent[Any]) -> int:
        async with sessionmaker() as session:
            return await effect_count(session, event_id=event.id)

    try:
        assert await runner._apply_batch(TopicPartition("tickets", 0), [_record(0, seen)])
        batch = [_record(1, first), _record(2, seen), _record(3, first), _record(4, poison),
                 _record(5, None, b"not json"), _record(6, second)]
        assert await runner._apply_batch(TopicPartition("tickets", 0), batch)
        assert [await effects(e) for e in (seen, first, poison, second)] == [1, 1, 0, 1]
        async with sessionmaker() as session:
            letters = (await session.execute(
                select(outbox.c.event_type).where(outbox.c.topic == "dlq")
                .order_by(outbox.c.id))).scalars().all()
        assert letters == ["dlq.handler_failed", "dlq.unparseable"]

        # The same batch again (a redelivery after a crash) changes nothing.
        assert await runner._apply_batch(TopicPartition("tickets", 0), batch)
        assert [await effects(e) for e in (seen, first, second)] == [1, 1, 1]
        async with sessionmaker() as session:
            assert await session.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.topic == "dlq")) == 2
    finally:
        await engine.dispose()


async def test_a_run_joining_two_topics_counts_each_event_under_its_own_topic(
    env: Env,
) -> None:
    """One poll reads every subscribed topic and a handler may take their events as one
    run; dashboards of events per topic must still see each event where it came from."""
    from prometheus_client import REGISTRY

    from escalator.shared.consumer import Handlers

    settings = env.settings(ProbeSettings)
    engine = make_engine(settings)
    await upgrade(engine, settings, SPEC.migrations)
    every = Handlers()

    @every.on_every
    async def keep(events: list[CloudEvent[Any]], *, session: Any) -> None:
        return None

    def consumed(topic: str) -> float:
        return REGISTRY.get_sample_value("escalator_events_consumed_total", {
            "topic": topic, "type": "ticket.created", "outcome": "processed"}) or 0.0

    before = {topic: consumed(topic) for topic in ("tickets", "assignments")}
    first, second = (envelope(ticket_created()) for _ in range(2))
    on_assignments = ConsumerRecord("assignments", 0, 0, 0, 0, *reversed(wire(second)), None,
                                    0, 0, ())
    try:
        runner = ConsumerRunner(settings, make_sessionmaker(engine), every)
        assert await runner._apply_batch("tickets-0, assignments-0",
                                         [_record(0, first), on_assignments])
        assert {topic: consumed(topic) - before[topic] for topic in before} == {
            "tickets": 1, "assignments": 1}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("sqlstate", ["57P01", "57P03", "08006", "40P01"])
def test_a_restarting_database_is_an_infrastructure_error(sqlstate: str) -> None:
    """A PostgreSQL restart must retry the batch, not crash the consumer (make chaos)."""
    from sqlalchemy.exc import DBAPIError

    from escalator.shared.consumer import is_infrastructure_error

    class Orig(Exception):
        pass

    orig = Orig("the database system is shutting down")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    assert is_infrastructure_error(DBAPIError("SELECT 1", None, orig))


async def test_on_every_takes_a_run_of_mixed_types_then_each_typed_handler_in_order() -> None:
    from escalator.shared.consumer import Handlers
    from escalator.shared.events import TicketClosed, TicketCreated

    calls: list[Any] = []
    every = Handlers()

    @every.on_every
    async def keep(events: list[CloudEvent[Any]], *, session: Any) -> None:
        calls.append(("every", [e.type for e in events]))

    @every.on(TicketClosed)
    async def close(event: CloudEvent[Any], *, session: Any) -> None:
        calls.append(("closed", event.subject))

    created = envelope(ticket_created("t-1"))
    closed = CloudEvent.wrap(TicketClosed(**{**ticket_created("t-2").model_dump(),
                                             "status": "closed"}), source="/test")
    assert every.joins(TicketCreated.event_type, TicketClosed.event_type)
    assert await every.dispatch([created, closed, created], session=None)  # type: ignore[arg-type]
    assert calls == [("every", ["ticket.created", "ticket.closed", "ticket.created"]),
                     ("closed", "t-2")]

    typed = Handlers()
    typed.on(TicketClosed)(close)
    assert not typed.joins(TicketCreated.event_type, TicketCreated.event_type)
    assert not await typed.dispatch([created], session=None)  # type: ignore[arg-type]


def test_a_batch_handler_takes_runs_of_any_of_its_types_and_only_its_own() -> None:
    """The notifier plans a run of mixed events at once: consecutive events join when
    one batch handler was registered for both types, never across two handlers."""
    from escalator.shared.consumer import Handlers
    from escalator.shared.events import TicketAssigned, TicketClosed, TicketCreated

    handlers = Handlers()

    async def plan(events: list[CloudEvent[Any]], *, session: Any) -> None: ...
    async def route(events: list[CloudEvent[Any]], *, session: Any) -> None: ...

    handlers.on_batch(TicketCreated, TicketClosed)(plan)
    handlers.on_batch(TicketAssigned)(route)
    created, closed = TicketCreated.event_type, TicketClosed.event_type
    assert handlers.joins(created, closed) and handlers.joins(closed, created)
    assert handlers.joins(created, created)
    assert not handlers.joins(created, TicketAssigned.event_type)
    assert not handlers.joins(TicketAssigned.event_type, closed)


async def test_start_up_warns_when_postgresql_will_never_analyse(
        pg_env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """Without autovacuum the plans made while tables were empty stay (seq scans that
    grow with the tables): the operator is told at start, whichever way the server is."""
    settings = pg_env.settings(ProbeSettings)
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            autovacuum = await conn.scalar(text("SHOW autovacuum"))
        with caplog.at_level(logging.WARNING, logger="escalator.shared.migrations"):
            await upgrade(engine, settings, SPEC.migrations)
    finally:
        await engine.dispose()
    warned = [r for r in caplog.records if "autovacuum off" in r.getMessage()]
    assert len(warned) == (1 if autovacuum == "off" else 0)
    assert all(settings.db_schema in r.getMessage() for r in warned)
