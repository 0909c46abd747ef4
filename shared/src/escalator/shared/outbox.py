"""Transactional outbox: events are rows in the same transaction as the change.

``publish()`` only inserts a row; nothing leaves the process until that transaction
commits, so a rollback publishes nothing. The relay then copies committed rows to
Kafka in id order with ``acks=all`` and marks them sent. A crash between send and mark
re-sends a row: consumers deduplicate by event id (inbox), which is the contract.

Ordering: one ticket's events must stay in order, so only one relay per service may be
active at a time. On PostgreSQL the relay that holds a session advisory lock (on a
connection of its own) is the leader; other replicas stand by and take over within a
poll interval when that connection dies. The relay never holds a database transaction
open while it waits for the broker, so a broker outage never blocks writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from sqlalchemy import Integer, bindparam, event, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, registry

from escalator.shared import metrics
from escalator.shared.bus import make_producer
from escalator.shared.db import among, application_name, outbox, unnested
from escalator.shared.events import CloudEvent, EventData, utcnow
from escalator.shared.settings import ServiceSettings
from escalator.shared.watermarks import vouch, watermark_topic

log = logging.getLogger(__name__)

_WAKE_FLAG = "escalator.outbox.pending"
#: A relay that has published nothing for this many watermark intervals is idle, and
#: vouches ``IDLE_FACTOR`` times less often (``Relay._vouch_due``).
IDLE_AFTER, IDLE_FACTOR = 60, 10


class OutboxRow:
    """ORM handle on the ``outbox`` table, so queuing an event is a plain ``session.add``."""

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)


registry().map_imperatively(OutboxRow, outbox)


def publish(session: AsyncSession, event: CloudEvent[Any]) -> None:
    """Queue ``event`` for publication when (and only if) ``session``'s transaction commits.

    Rows flush in the order they were added, so one session's events keep their order.
    """
    enqueue(
        session,
        topic=event.topic,
        key=event.subject,
        event_id=event.id,
        event_type=event.type,
        payload=event.model_dump_json(),
    )


async def publish_many(session: AsyncSession, events: list[CloudEvent[Any]]) -> None:
    """Queue many events with one statement: for bursts (thousands of timers) where an ORM
    object per row costs more than building the events. Same guarantees as ``publish``,
    and the same commit hook wakes the relay.

    On PostgreSQL the rows go in as one array per column (``QUEUE``, ``INSERT ... SELECT
    unnest``): the server plans and runs one statement instead of one per row, and no
    parameter is processed per row (a thousand timer events: 17 ms instead of 25)."""
    if not events:
        return
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(QUEUE, queue_arrays(session, events))
        return
    session.sync_session.info[_WAKE_FLAG] = True
    now = utcnow()
    await session.execute(insert(outbox), [
        {**dict(zip(_QUEUED, row, strict=True)), "created_at": now} for row in _rows(events)])


def queue_arrays(session: AsyncSession, events: list[CloudEvent[Any]]) -> dict[str, Any]:
    """``QUEUE``'s parameters for ``events`` (none: an insert of nothing), and the
    session's commit will wake the relay. For a service that runs ``QUEUE`` with writes
    of its own as CTEs (``QUEUE.add_cte``): one round trip for a handler's every write."""
    if events:
        session.sync_session.info[_WAKE_FLAG] = True
    columns = zip(*_rows(events), strict=True) if events else ((),) * len(_QUEUED)
    return {**{f"queued_{name}": values for name, values in zip(_QUEUED, columns, strict=True)},
            "queued_created_at": utcnow()}


def _rows(events: list[CloudEvent[Any]]) -> list[tuple[str, ...]]:
    return [(event.id, event.topic, event.subject, event.type, event.model_dump_json())
            for event in events]


_QUEUED = ("event_id", "topic", "key", "event_type", "payload")
#: PostgreSQL: queue events given as one array per column (``queue_arrays``). Parameters
#: are prefixed: an UPDATE sharing the statement would take a parameter named like one of
#: its table's columns (``key``) as a value to SET.
QUEUE = insert(outbox).from_select(
    [*_QUEUED, "created_at"], unnested(outbox, _QUEUED, ["created_at"], prefix="queued_"))


@functools.lru_cache(maxsize=65_536)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition aiokafka's (and the Java client's) default partitioner gives
    ``key``: murmur2, positive, modulo the partition count. Cached: one ticket's events
    share a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), equal to
    ``aiokafka.partitioner.murmur2`` (a test compares them) and twice as fast (4.8 against
    9.2 µs for a ticket id): the words are unpacked at once and masked once per step.
    aiokafka's was a fifth of the relay's CPU."""
    m, length = 0x5BD1E995, len(data)
    h = 0x9747B28C ^ length
    for k in struct.unpack_from(f"<{length // 4}I", data):
        k = (k * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail, base = length & 3, length & ~3
    if tail:
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def enqueue(
    session: AsyncSession, *, topic: str, key: str, event_id: str, event_type: str, payload: str
) -> None:
    """Queue any message (a CloudEvent, or a dead letter) on a logical topic."""
    session.sync_session.info[_WAKE_FLAG] = True
    session.add(
        OutboxRow(
            event_id=event_id,
            topic=topic,
            key=key,
            event_type=event_type,
            payload=payload,
            created_at=utcnow(),
        )
    )


def emit(
    session: AsyncSession,
    data: EventData,
    *,
    source: str,
    time: datetime | None = None,
    event_id: str | None = None,
) -> CloudEvent[Any]:
    """Wrap ``data`` in an envelope and queue it; returns the envelope for logging/tests."""
    event = CloudEvent.wrap(data, source=source, time=time, event_id=event_id)
    publish(session, event)
    return event


class Relay:
    """Publishes committed outbox rows to Kafka; retries with backoff while the broker is down."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        producer_factory: Any = make_producer,
        *,
        watermarks: Sequence[str] = (),
    ) -> None:
        """``watermarks``: the logical topics this service produces, which the relay
        vouches for (``escalator.shared.watermarks``)."""
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._lease: AsyncConnection | None = None
        self._lock_id = zlib.crc32(f"escalator-outbox-{settings.db_schema}".encode())
        self._counted_at = 0.0
        self._partitions: dict[str, int] = {}
        self._watermarks = list(watermarks)
        self._vouching: list[str] = []  #: those whose watermark topic exists
        self._offsets: AIOKafkaConsumer | None = None  #: reads end offsets for them
        self._read_at = utcnow()  #: when the last pass read the unsent rows
        self._vouched_at = 0.0
        self._published_at = 0.0  #: when a pass last published something
        self.connected = False

    def wake(self) -> None:
        self._wake.set()

    def install_commit_hook(self) -> None:
        """Wake the relay right after any commit that queued events: no polling delay.

        ``make_sessionmaker`` gives each sessionmaker its own Session subclass, so the
        hook sees only this service's sessions.
        """
        session_class = self._sessionmaker.kw["sync_session_class"]
        wake = self.wake

        def _after_commit(session: Session) -> None:
            if session.info.pop(_WAKE_FLAG, False):
                wake()

        def _after_rollback(session: Session) -> None:
            session.info.pop(_WAKE_FLAG, None)

        event.listen(session_class, "after_commit", _after_commit)
        event.listen(session_class, "after_rollback", _after_rollback)

    async def run(self) -> None:
        backoff = 0.1
        try:
            while not self._stopping:
                try:
                    sent = 0
                    if await self._hold_lease():
                        await self._ensure_producer()
                        vouching = self._vouch_due() <= 0
                        sent = await self.relay_once(vouching=vouching)
                        if sent < self._settings.outbox_batch_size and vouching:
                            await self._vouch()
                    backoff = 0.1
                    # A short batch took every row committed when it was read; a commit
                    # since then has set the wake, so the wait returns at once for it.
                    # (Reading again straight away cost an empty pass, four round trips,
                    # after every commit.)
                    if sent < self._settings.outbox_batch_size:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), min(
                                self._settings.outbox_poll_seconds, self._vouch_due()))
                        self._wake.clear()
                except (KafkaError, OSError, OperationalError, DBAPIError, TimeoutError) as exc:
                    self.connected = False
                    log.warning(
                        "outbox relay failed (%s: %s); retrying in %.1fs",
                        type(exc).__name__, exc, backoff,
                    )
                    await self._reset_producer()
                    await self._release_lease()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            await self._reset_producer()
            await self._release_lease()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def relay_once(self, *, vouching: bool = False) -> int:
        """Publish one batch of unsent rows in id order; returns how many were sent.

        ``vouching``: a watermark follows if this pass takes every unsent row, so first
        note up to when that will hold (``_covered_until``)."""
        assert self._producer is not None
        async with self._connection() as conn:
            if vouching:
                self._read_at = await _covered_until(conn, self._settings)
            rows = (await conn.execute(_UNSENT, {"batch": self._settings.outbox_batch_size}
                                       )).all()
        if not rows:
            metrics.OUTBOX_BACKLOG.set(0)
            return 0
        await self._send(rows)
        self._published_at = time.monotonic()
        async with self._connection() as conn:
            await conn.execute(_mark_sent(conn.dialect.name),
                               {"ids": [row.id for row in rows], "sent_at": utcnow()})
            if len(rows) < self._settings.outbox_batch_size:
                backlog = 0  # this batch took everything that was committed
            elif time.monotonic() - self._counted_at >= 1.0:
                # Counting a large backlog scans it; once a second is enough for a gauge.
                self._counted_at = time.monotonic()
                backlog = await conn.scalar(
                    select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
                ) or 0
            else:
                backlog = None
        if backlog is not None:
            metrics.OUTBOX_BACKLOG.set(backlog)
        for (topic, event_type), sent in Counter((row.topic, row.event_type)
                                                 for row in rows).items():
            metrics.EVENTS_PRODUCED.labels(topic, event_type).inc(sent)
        self.connected = True
        return len(rows)

    def _vouch_due(self) -> float:
        """Seconds until the next watermark is due (infinite when there is none to give).

        Every ``watermark_interval_seconds`` while events flow; once nothing has been
        published for ``IDLE_AFTER`` of them, ``IDLE_FACTOR`` times less often. On the
        memory-only broker of ``make run`` each record stays for good (about 1.2 KB):
        five services vouching every half second would hold a gigabyte a day of an
        idle system; idle, they hold about a tenth of that. The price: in a system idle
        for half a minute, a deadline's breach can wait up to five seconds for the
        watermark that says nothing was acknowledged in time."""
        if not self._vouching:
            return float("inf")
        now, interval = time.monotonic(), self._settings.watermark_interval_seconds
        if now - self._published_at >= IDLE_AFTER * interval:
            interval *= IDLE_FACTOR
        return self._vouched_at + interval - now

    async def _vouch(self) -> None:
        """The last pass took every unsent row and the broker acknowledged them: vouch
        that everything committed before that pass's read is published."""
        assert self._producer is not None and self._offsets is not None
        await vouch(self._settings, self._producer, self._offsets, self._vouching,
                    self._read_at)
        self._vouched_at = time.monotonic()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """Where the relay's statements run. On PostgreSQL the lease connection itself:
        it is in autocommit, so each statement is one round trip (as its own transaction
        it was three: BEGIN, the statement, COMMIT), and a lease lost with its connection
        fails the read before anything is published, which a separate check per pass
        did before. On SQLite (no lease) a transaction per use."""
        if self._lease is not None:
            yield self._lease
            return
        async with self._sessionmaker.kw["bind"].begin() as conn:
            yield conn

    async def _send(self, rows: Sequence[Any]) -> None:
        """Send rows (in id order) and wait until the broker has them all.

        Rows are grouped by partition, as the producer's own partitioner would place
        them (``partition_of``), and handed over as record batches, one partition's
        batches in order: sending them one by one cost 50 µs of CPU per event (a future,
        a partitioner call and two awaits each), as much as the work that made the
        event. Partitions go out side by side, so their round trips overlap; aiokafka
        keeps one batch of a partition in flight, so per-key order holds."""
        assert self._producer is not None
        producer = self._producer
        groups: dict[tuple[str, int], list[Any]] = {}
        topics = {name: self._settings.topic(name) for name in {row.topic for row in rows}}
        for topic in topics.values():
            if topic not in self._partitions:
                self._partitions[topic] = len(await producer.partitions_for(topic))
        for row in rows:
            topic = topics[row.topic]
            count = self._partitions[topic]
            key = row.key.encode()
            groups.setdefault((topic, partition_of(key, count)), []).append(
                (key, row.payload.encode()))
        await asyncio.gather(*(self._send_partition(topic, partition, records)
                               for (topic, partition), records in groups.items()))

    async def _send_partition(self, topic: str, partition: int,
                              records: list[tuple[bytes, bytes]]) -> None:
        assert self._producer is not None
        producer, sent = self._producer, []
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise MessageSizeTooLargeError(
                        f"an event of {len(value)} bytes does not fit in a record batch")
        sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)

    async def _hold_lease(self) -> bool:
        """Become (or stay) the one relay of this service; always true on SQLite."""
        engine = self._sessionmaker.kw["bind"]
        if engine.dialect.name != "postgresql":
            return True
        if self._lease is None:
            # Autocommit: the lock is the session's, and the relay's statements run
            # on this connection (``_connection``), one round trip each.
            conn = await (await engine.connect()).execution_options(
                isolation_level="AUTOCOMMIT")
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:id)"), {"id": self._lock_id})
            if not got:
                await conn.close()
                return False
            self._lease = conn
            log.info("outbox relay is the leader for schema %s", self._settings.db_schema)
        # A dead lease connection means another replica may lead now: the relay's next
        # read runs on it (``_connection``) and fails before anything is published.
        return True

    async def _release_lease(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            with contextlib.suppress(Exception):
                await lease.close()

    async def _ensure_producer(self) -> None:
        if self._producer is None:
            producer = self._producer_factory(self._settings)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
            self.connected = True
        if self._watermarks and self._offsets is None:
            await self._start_offsets()

    async def _start_offsets(self) -> None:
        """The client that reads end offsets for watermarks; only the watermark topics
        that exist are vouched for (a missing one would stall every pass on metadata)."""
        offsets = AIOKafkaConsumer(bootstrap_servers=self._settings.kafka_bootstrap_servers,
                                   group_id=None, enable_auto_commit=False,
                                   client_id=f"escalator-{self._settings.service_name}")
        try:
            await offsets.start()
            await offsets.topics()
        except BaseException:
            await offsets.stop()
            raise
        self._vouching = []
        for topic in self._watermarks:
            if offsets.partitions_for_topic(self._settings.topic(watermark_topic(topic))):
                self._vouching.append(topic)
            else:
                log.warning("watermark topic for %s does not exist (run the topics job); "
                            "its consumers keep the old read-horizon rule", topic)
        self._offsets = offsets

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        offsets, self._offsets = self._offsets, None
        self._partitions.clear()
        self._vouching = []
        for client in (producer, offsets):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()


_OPEN_SINCE = text(
    "SELECT min(xact_start) FROM pg_stat_activity "
    "WHERE application_name = :name AND datname = current_database() "
    "AND pid <> pg_backend_pid()")


#: The relay's statements, built once: building one and its cache key anew costs about
#: as much CPU as its round trip, on every pass of every service.
_UNSENT = (select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.event_type,
                  outbox.c.payload)
           .where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id)
           .limit(bindparam("batch", type_=Integer)))


@functools.cache
def _mark_sent(dialect: str) -> Any:
    return (update(outbox).where(among(outbox.c.id, "ids", dialect))
            .values(sent_at=bindparam("sent_at", type_=outbox.c.sent_at.type)))


async def _covered_until(conn: AsyncConnection, settings: ServiceSettings) -> datetime:
    """The moment a watermark may vouch for, read before the pass reads its rows.

    The rows the pass reads are those committed before it; but an event's time is
    stamped inside its transaction (after its first statement: handlers and endpoints
    read before they write), which may commit well after the read: a lock wait or a
    stalled disk can exceed the breach grace, and the sla-timer would then breach a
    ticket acknowledged in time. So on PostgreSQL the moment is the start of the
    oldest transaction this service's connections have open (``application_name``,
    set by ``make_engine``, names them across replicas), if earlier than now: every
    event stamped before it has committed, hence is in this read or an earlier one.
    Asked before the rows are read, so a transaction that commits in between counts
    as open, not as missed. SQLite (the single-process development default) keeps the
    plain clock.
    """
    now = utcnow()
    if conn.dialect.name != "postgresql":
        return now
    since = await conn.scalar(_OPEN_SINCE, {"name": application_name(settings)})
    return now if since is None else min(now, since)
