"""Producer watermarks: a consumer's read horizon passes a moment only once everything
its producers made before that moment is applied, even while a relay holds a backlog."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import text

from escalator.shared import progress
from escalator.shared.db import make_engine, make_sessionmaker
from escalator.shared.events import TICKETS, utcnow
from escalator.shared.outbox import Relay, emit
from escalator.shared.watermarks import WatermarkReader, decode, encode
from tests.shared.factories import ticket_created
from tests.shared.probe.app import SPEC, ProbeSettings, effect_count
from tests.support import Env, RunningService, read_topic, running, wait_until

PRODUCER = dataclasses.replace(SPEC, name="producer", handlers=None, produces=(TICKETS,))
CONSUMER = dataclasses.replace(SPEC, record_progress=True)


class ProducerSettings(ProbeSettings):
    service_name: str = "producer"


async def _horizon(service: RunningService) -> datetime | None:
    async with service.runtime.sessionmaker() as session:
        return await progress.horizon(session, service.runtime.runner.topics)


async def _queue(settings: ProducerSettings, ticket_id: str) -> datetime:
    """Commit a ticket.created into the producer's outbox while its relay is down."""
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            event = emit(session, ticket_created(ticket_id), source="/test")
        return event.time
    finally:
        await engine.dispose()


async def test_horizon_waits_for_what_a_stopped_relay_still_holds(env: Env) -> None:
    producer_settings = env.settings(ProducerSettings, watermark_interval_seconds=0.1)
    consumer_settings = env.settings(ProbeSettings)
    consumer = RunningService(CONSUMER, consumer_settings)
    async with running(PRODUCER, producer_settings) as producer:
        await consumer.start()
        async with producer.runtime.sessionmaker() as session, session.begin():
            first = emit(session, ticket_created("wm-1"), source="/test")
        # A vouched topic's horizon moves with the producer's watermarks.
        await wait_until(lambda: _after(consumer, first.time), timeout=20,
                         message="the horizon never passed the first event")
        async with consumer.runtime.sessionmaker() as session:
            assert await effect_count(session, event_id=first.id) == 1
    # The producer is down with an event committed in its outbox: the consumer has read
    # every partition to its end, and must not take that as having read the event.
    held = await _queue(producer_settings, "wm-2")
    try:
        await _stays_before(consumer, held)
        await consumer.stop()  # a restarted consumer knows the topic is vouched for
        consumer = RunningService(CONSUMER, consumer_settings)
        await consumer.start()
        await _stays_before(consumer, held)
        async with running(PRODUCER, producer_settings):
            await wait_until(lambda: _after(consumer, held), timeout=20,
                             message="the horizon never passed the held event")
            async with consumer.runtime.sessionmaker() as session:
                assert await effect_count(session, ticket_id="wm-2") == 1
    finally:
        await consumer.stop()


async def test_a_slow_commit_holds_the_watermark_back(pg_env: Env) -> None:
    """An event is stamped inside its transaction, which can commit long after (a lock
    wait, a stalled disk): the relay vouches only up to the start of the oldest
    transaction its service has open, so the horizon waits for that commit instead of
    passing the event's time while it is still unpublished."""
    producer_settings = pg_env.settings(ProducerSettings, watermark_interval_seconds=0.1)
    consumer = RunningService(CONSUMER, pg_env.settings(ProbeSettings))
    async with running(PRODUCER, producer_settings) as producer:
        await consumer.start()
        try:
            async with producer.runtime.sessionmaker() as session, session.begin():
                first = emit(session, ticket_created("wm-first"), source="/test")
            await wait_until(lambda: _after(consumer, first.time), timeout=20,
                             message="the horizon never passed the first event")
            async with producer.runtime.sessionmaker() as session, session.begin():
                # As handlers do: read, then stamp and write what follows from it.
                await session.execute(text("SELECT 1"))
                slow = emit(session, ticket_created("wm-slow"), source="/test")
                await session.flush()
                # Events committed meanwhile keep the relay publishing and vouching.
                for n in range(4):
                    async with producer.runtime.sessionmaker() as other, other.begin():
                        later = emit(other, ticket_created(f"wm-other-{n}"), source="/test")
                    await asyncio.sleep(0.5)
                read = await _horizon(consumer)
                assert read is not None and first.time <= read < slow.time
            await wait_until(lambda: _after(consumer, later.time), timeout=20,
                             message="the horizon never passed the slow commit")
            async with consumer.runtime.sessionmaker() as session:
                assert await effect_count(session, ticket_id="wm-slow") == 1
        finally:
            await consumer.stop()


async def _after(consumer: RunningService, moment: datetime) -> bool:
    read = await _horizon(consumer)
    return read is not None and read >= moment


async def _stays_before(consumer: RunningService, moment: datetime) -> None:
    """For two seconds (twenty progress writes and more), the horizon is before it."""
    end = asyncio.get_running_loop().time() + 2
    while asyncio.get_running_loop().time() < end:
        read = await _horizon(consumer)
        assert read is None or read < moment, f"horizon {read} passed the held {moment}"
        await asyncio.sleep(0.1)


async def test_a_relay_without_its_watermark_topic_still_publishes(env: Env) -> None:
    """Topics made before watermarks existed (an old topics job): the relay says so once
    and publishes as before; it must not wait on the missing topic's metadata."""
    settings = env.settings(ProducerSettings)
    admin = AIOKafkaAdminClient(bootstrap_servers=env.broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(settings.topic(TICKETS), 3, 1)])
    finally:
        await admin.close()
    producer = RunningService(PRODUCER, settings)
    await producer.start()
    try:
        async with producer.runtime.sessionmaker() as session, session.begin():
            event = emit(session, ticket_created("wm-3"), source="/test")
        records = await read_topic(env.broker.bootstrap, settings.topic(TICKETS), count=1)
        assert [json.loads(r.value)["id"] for r in records] == [event.id]
        assert producer.runtime.relay._vouching == []
    finally:
        await producer.stop()


def test_an_idle_relay_vouches_ten_times_less_often() -> None:
    """Each record stays for good on the memory-only broker: vouch every interval while
    events flow, and a tenth as often once nothing has been published for 60 of them."""
    relay = Relay(ProbeSettings(watermark_interval_seconds=0.5), None,  # type: ignore[arg-type]
                  watermarks=[TICKETS])
    assert relay._vouch_due() == float("inf")  # nothing to vouch for until connected
    relay._vouching = [TICKETS]
    now = time.monotonic()
    relay._published_at, relay._vouched_at = now - 1, now
    assert 0.4 < relay._vouch_due() <= 0.5
    relay._published_at = now - 31  # idle: 60 intervals of 0.5 s without publishing
    assert 4.9 < relay._vouch_due() <= 5.0


@dataclasses.dataclass
class _Record:
    value: bytes
    offset: int = 0


def test_a_position_reaches_the_latest_watermark_it_covers() -> None:
    reader = WatermarkReader(ProbeSettings(), [TICKETS], fetch_wait_ms=50)
    base = datetime(2026, 12, 6, tzinfo=UTC)
    moments = [base + timedelta(seconds=n) for n in range(3)]
    source = next(iter(reader._topic_of))  # the watermark partition
    assert not reader.vouched(TICKETS)
    reader._take({source: [_Record(encode(moments[0], [5, 0])),
                           _Record(b"not json", 1),
                           _Record(encode(moments[1], [9, 2])),
                           _Record(encode(moments[2], [12, 2]))]})
    assert reader.vouched(TICKETS)
    assert reader.through(TICKETS, 0, 4) is None  # below every vouched offset
    assert reader.through(TICKETS, 0, 9) == moments[1]
    assert reader.through(TICKETS, 0, 5) == moments[1]  # never moves back
    assert reader.through(TICKETS, 1, 2) == moments[2]
    assert reader.through(TICKETS, 2, 100) is None  # a partition no watermark names


@pytest.mark.parametrize("raw", [b"", b"[]", b'{"through": "yesterday", "offsets": []}',
                                 b'{"through": "2026-12-06T00:00:00", "offsets": [1]}',
                                 b'{"through": "2026-12-06T00:00:00+00:00", "offsets": "x"}'])
def test_anything_but_a_watermark_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode(raw)


def test_a_watermark_round_trips() -> None:
    now = utcnow()
    assert decode(encode(now, [3, 4])) == (now, [3, 4])
