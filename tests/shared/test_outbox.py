"""The outbox publishes exactly the events whose transactions committed."""

from __future__ import annotations

import json
import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from sqlalchemy import select

from escalator.shared.bus import ensure_topics
from escalator.shared.db import outbox
from escalator.shared.events import CloudEvent
from escalator.shared.outbox import emit, murmur2, partition_of, publish_many
from scripts.devstack import Broker, free_port
from tests.shared.factories import ticket_created
from tests.shared.probe.app import SPEC, ProbeSettings
from tests.support import Env, RunningService, read_topic, running, wait_until


class Boom(Exception):
    pass


async def test_event_is_published_when_and_only_when_its_transaction_commits(env: Env) -> None:
    async with running(SPEC, env.settings(ProbeSettings)) as svc:
        topic = f"{env.prefix}tickets"
        async with svc.runtime.sessionmaker() as session:
            async with session.begin():
                event = emit(session, ticket_created(), source="/test")
                await session.flush()
                # Still uncommitted: nothing may reach the broker.
                assert await read_topic(env.broker.bootstrap, topic, count=1, timeout=1.0) == []
            records = await read_topic(env.broker.bootstrap, topic, count=1)
        assert [json.loads(r.value)["id"] for r in records] == [event.id]
        assert records[0].key == event.subject.encode()


async def test_rolled_back_transaction_publishes_nothing(env: Env) -> None:
    async with running(SPEC, env.settings(ProbeSettings)) as svc:
        with pytest.raises(Boom):
            async with svc.runtime.sessionmaker() as session, session.begin():
                emit(session, ticket_created(), source="/test")
                raise Boom
        async with svc.runtime.sessionmaker() as session, session.begin():
            kept = emit(session, ticket_created(), source="/test")
        records = await read_topic(env.broker.bootstrap, f"{env.prefix}tickets", count=2,
                                   timeout=2.0)
        assert [json.loads(r.value)["id"] for r in records] == [kept.id]


async def test_publish_many_queues_every_event_whole_and_in_order(env: Env) -> None:
    """The bulk form (one array per column on PostgreSQL) publishes what ``emit`` would:
    same ids, keys, bodies, in the order given; and nothing when it rolls back."""
    events = [CloudEvent.wrap(ticket_created(external_id=f"bulk-{n}"), source="/test")
              for n in range(300)]
    async with running(SPEC, env.settings(ProbeSettings)) as svc:
        with pytest.raises(Boom):
            async with svc.runtime.sessionmaker() as session, session.begin():
                await publish_many(session, [CloudEvent.wrap(ticket_created(), source="/x")])
                raise Boom
        async with svc.runtime.sessionmaker() as session, session.begin():
            await publish_many(session, events)
        async with svc.runtime.sessionmaker() as session:
            queued = (await session.execute(select(outbox.c.event_id).order_by(outbox.c.id)))
        assert list(queued.scalars()) == [e.id for e in events]  # the relay's order
        records = await read_topic(env.broker.bootstrap, f"{env.prefix}tickets",
                                   count=len(events) + 1, timeout=10)
    assert sorted((r.key, r.value) for r in records) == sorted(
        (e.subject.encode(), e.model_dump_json().encode()) for e in events)


async def test_broker_outage_delays_but_loses_nothing(env: Env) -> None:
    """The broker is down when the events commit; they go out, in order, once it is up."""
    outage = Broker(free_port(), env.tmp_path / "outage.log")  # not started yet
    settings = env.settings(ProbeSettings, kafka_bootstrap_servers=outage.bootstrap)
    svc = RunningService(SPEC, settings)
    await svc.start()
    try:
        ticket = "ticket-during-outage"
        sent = []
        for n in range(5):
            async with svc.runtime.sessionmaker() as session, session.begin():
                sent.append(emit(session, ticket_created(ticket, external_id=f"e{n}"),
                                 source="/test").id)
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["broker"] == "unreachable"

        outage.start()
        try:
            await ensure_topics(settings)
            records = await read_topic(outage.bootstrap, f"{env.prefix}tickets", count=5,
                                       timeout=30)
            assert [json.loads(r.value)["id"] for r in records] == sent
            await wait_until(lambda: _ready(svc), message="service never became ready")
        finally:
            await svc.stop()
            outage.stop()
    except BaseException:
        await svc.stop()
        raise


async def _ready(svc: RunningService) -> bool:
    return (await svc.client.get("/readyz")).status_code == 200


def test_relay_places_keys_where_the_default_partitioner_does() -> None:
    """The relay hands record batches to partitions it picks itself: a key must land where
    every other producer of the topic (aiokafka, the Java client) would put it, or one
    ticket's events could be split across partitions and lose their order."""
    rng = random.Random(7)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", "δοκιμή".encode()] + [
        rng.randbytes(rng.randrange(0, 90)) for _ in range(5_000)]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key)
        for count in (1, 6, 7, 12):
            assert partition_of(key, count) == DefaultPartitioner()(key, list(range(count)), [])

