"""The consumer runner: apply each event once, commit offsets only after the effect.

For each poll (the records of one or more partitions) the runner opens one database
transaction. The fast path claims every event id of the batch in the inbox with one
statement (ids already there are duplicates: nothing to do) and runs the typed handlers
one after another, with no savepoints: a batch of good events costs its handlers'
statements and one commit. A handler registered with ``on_batch`` is given each run of
consecutive events of its types at once, and one registered with ``on_every`` all of a
batch's events, so either can apply many events with one statement per table.

When a handler fails, the batch is rolled back and applied again on the careful path:
per message, parse the CloudEvent (unparseable -> dead letter), claim its id, and run
the handler inside a savepoint with a few attempts before the message is dead-lettered.
Dead letters go through the outbox in the same transaction, so "moved to dlq" and
"offset advanced" cannot disagree. Only after the transaction commits are the
partitions' offsets committed.

Infrastructure failures (database or connection errors) are not the message's fault:
the batch is retried with backoff until it succeeds or the service stops, and nothing
is dead-lettered for them.

Services that act on time (``record_progress``) also get, after each round, how far
every partition has been read (``escalator.shared.progress``), so they do not act on a
picture the unread backlog would change.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pydantic import ValidationError
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalator.shared import metrics, progress
from escalator.shared.db import InsertNew, inbox
from escalator.shared.events import (
    ALL_TOPICS,
    DLQ,
    EVENT_TYPES,
    CloudEvent,
    EventData,
    parse_event,
    utcnow,
)
from escalator.shared.logs import log_context
from escalator.shared.outbox import enqueue
from escalator.shared.settings import ServiceSettings
from escalator.shared.watermarks import WatermarkReader

log = logging.getLogger(__name__)

D = TypeVar("D", bound=EventData)
Handler = Callable[..., Awaitable[None]]


_TYPE = re.compile(rb'"type"\s*:\s*"([^"\\]+)"')
_TYPED: dict[str, Any] = {}


def _parse(raw: bytes) -> CloudEvent[Any] | None:
    """``parse_event`` in one pass for the common case: the type is read off the bytes
    and the envelope validated straight into ``CloudEvent[model]`` (about 30% less CPU
    than an untyped envelope, then its data, then the typed envelope). Anything this
    does not accept exactly as ``parse_event`` would goes to ``parse_event``, which then
    decides (and raises for the careful path to dead-letter)."""
    found = _TYPE.search(raw)
    model = EVENT_TYPES.get(found.group(1).decode(errors="replace")) if found else None
    if model is not None:
        typed = _TYPED.get(model.event_type)
        if typed is None:
            typed = _TYPED[model.event_type] = CloudEvent[model]  # type: ignore[valid-type]
        try:
            event: CloudEvent[Any] = typed.model_validate_json(raw)
        except ValidationError:
            pass
        else:
            if event.type == model.event_type and event.subject and 0 < len(event.id) <= 200:
                return event
    return parse_event(raw)


class Handlers:
    """What a service does per event type; also tells the runner which topics to read."""

    def __init__(self) -> None:
        self._by_type: dict[str, Handler] = {}
        self._batched: set[str] = set()
        self._every: Handler | None = None

    def on(self, *models: type[EventData]) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            for model in models:
                if model.event_type in self._by_type:
                    raise ValueError(f"two handlers for {model.event_type}")
                self._by_type[model.event_type] = fn
            return fn

        return register

    def on_batch(self, *models: type[EventData]) -> Callable[[Handler], Handler]:
        """Like ``on``, but ``fn(events, *, session)`` takes a list of events, in order.

        The fast path gives it every run of consecutive events of the types it was
        registered for, mixed or not, at once (one key's events stay in order); the
        careful path gives it one event at a time."""

        def register(fn: Handler) -> Handler:
            self.on(*models)(fn)
            self._batched.update(model.event_type for model in models)
            return fn

        return register

    def on_every(self, fn: Handler) -> Handler:
        """Run ``fn(events, *, session)`` for every known event on every topic, before
        the events' typed handlers.

        The fast path gives it all of a batch's events at once (one partition's, in
        order), then runs each one's typed handler in turn; the careful path one event at
        a time. So a service that keeps every event (postmortem's timelines) stores a
        batch with one statement, where one per event cost most of its CPU."""
        self._every = fn
        return fn

    def joins(self, before: str, after: str) -> bool:
        """Whether the fast path applies consecutive events of these types as one run."""
        if self._every is not None:
            return True
        return (before in self._batched and after in self._batched
                and self._by_type[before] is self._by_type[after])

    def topics(self) -> list[str]:
        if self._every is not None:
            return [t for t in ALL_TOPICS if t != DLQ]
        from escalator.shared.events import EVENT_TYPES

        return sorted({EVENT_TYPES[t].topic for t in self._by_type})

    async def dispatch(self, events: list[CloudEvent[Any]], session: AsyncSession) -> bool:
        """Apply a run of events (see ``joins``); False when this service has nothing to
        do with their type."""
        handled = False
        if self._every is not None:
            await self._every(events, session=session)
            handled = True
        elif events[0].type in self._batched:
            await self._by_type[events[0].type](events, session=session)
            return True
        for event in events:
            handler = self._by_type.get(event.type)
            if handler is not None:
                await handler([event] if event.type in self._batched else event,
                              session=session)
                handled = True
        return handled


#: PostgreSQL states where a retry of the whole transaction works: deadlock and
#: serialization failure, and the server shutting down, starting up or restarting
#: (operator intervention, class 57P). Class 08 (connection exceptions) too, below.
_TRANSIENT_SQLSTATES = {"40P01", "40001", "57P01", "57P02", "57P03"}


def is_infrastructure_error(exc: BaseException) -> bool:
    """Errors that say the database or network is unwell rather than the message bad.

    These retry the whole batch (a fresh transaction) instead of counting against the
    message, which would dead-letter good events during a database blip.
    """
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return (
            exc.connection_invalidated
            or sqlstate in _TRANSIENT_SQLSTATES
            or str(sqlstate or "").startswith("08")
            or type(exc).__name__ in {"OperationalError", "InterfaceError"}
        )
    return isinstance(exc, OSError | ConnectionError | TimeoutError)


class _HandlerFailed(Exception):
    """The fast path met a message it cannot apply in bulk; redo the batch carefully."""


class _ForgetRevokedLag(ConsumerRebalanceListener):  # type: ignore[misc]
    """Drop the lag gauge of partitions this replica no longer owns, so dashboards that
    sum lag over replicas never count a partition twice."""

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


#: Claims a batch's event ids in the inbox; ids in sorted order (``_claim_all``).
_CLAIM = InsertNew(inbox, "event_id", ["event_id", "event_type", "topic"], ["processed_at"])


class ConsumerRunner:
    def __init__(
        self,
        settings: ServiceSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        handlers: Handlers,
        *,
        topics: Iterable[str] | None = None,
        record_progress: bool = False,
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._handlers = handlers
        self._topics = list(topics or handlers.topics())
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._closing: asyncio.Future[None] | None = None
        self._record_progress = record_progress
        wait = settings.consumer_fetch_max_wait_ms
        self._poll_ms = min(wait, int(progress.PROGRESS_INTERVAL * 1000)) if record_progress \
            else wait
        self._last_stamp: dict[TopicPartition, int] = {}
        self._watermarks = WatermarkReader(settings, self._topics, fetch_wait_ms=self._poll_ms) \
            if record_progress else None
        self._progress_written = 0.0
        #: Called after each progress write, e.g. to wake a timer loop held by the horizon.
        self.on_progress: list[Callable[[], None]] = []
        self.connected = False

    @property
    def topics(self) -> list[str]:
        """The physical topic names this runner reads (the prefix applied)."""
        return [self._settings.topic(t) for t in self._topics]

    def stop(self) -> None:
        """Ask the runner to finish its batch, commit, and leave the group."""
        self._stopping.set()

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.kafka_bootstrap_servers,
                group_id=self._settings.consumer_group,
                client_id=f"escalator-{self._settings.service_name}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self._settings.consumer_batch_size,
                session_timeout_ms=self._settings.consumer_session_timeout_ms,
                heartbeat_interval_ms=max(self._settings.consumer_session_timeout_ms // 5, 500),
                # An idle fetch answers after this long: how stale the horizon may get,
                # and (on Tansu) how long a record arriving meanwhile waits.
                fetch_max_wait_ms=self._poll_ms,
            )
            consumer.subscribe(self.topics, listener=_ForgetRevokedLag())
            try:
                if self._watermarks is not None:
                    # Before any progress is written: which topics are vouched for.
                    await self._watermarks.start()
                # Joining a group can take seconds (brokers delay the first rebalance);
                # a shutdown must not wait for it.
                if not await self._until_stopped(consumer.start()):
                    # Leaving mid-join waits out the same delay; let it end in the
                    # background instead of holding up the shutdown.
                    self._closing = asyncio.ensure_future(consumer.stop())
                    await self._stop_watermarks()
                    return
            except (KafkaError, OSError) as exc:
                log.warning("consumer cannot reach the broker (%s); retrying in %.1fs",
                            exc, backoff)
                with contextlib.suppress(Exception):
                    await consumer.stop()
                await self._stop_watermarks()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._consumer = consumer
            self.connected = True
            try:
                await self._loop(consumer)
            finally:
                self.connected = False
                self._consumer = None
                await self._stop_watermarks()
                # Leaves the group so partitions move to the other replicas at once.
                await consumer.stop()

    async def _stop_watermarks(self) -> None:
        if self._watermarks is not None:
            with contextlib.suppress(Exception):
                await self._watermarks.stop()

    async def _until_stopped(self, coro: Awaitable[None]) -> bool:
        """Await ``coro`` unless ``stop()`` comes first; True when ``coro`` finished."""
        work = asyncio.ensure_future(coro)
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if work.done():
            work.result()
            return True
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError, OSError):
            await work
        return False

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=self._poll_ms)
            if batches:
                # All partitions of one poll in one transaction: its fixed cost (begin,
                # inbox claim, the handlers' set-up statements, commit) is paid once per
                # poll, not once per partition. Each partition's records keep their order.
                polled = [record for records in batches.values() for record in records]
                if not await self._apply_batch(", ".join(map(str, batches)), polled):
                    return  # stopping while the database is away: leave uncommitted
                for tp, records in batches.items():
                    self._last_stamp[tp] = records[-1].timestamp
                await self._commit_polled(consumer, batches)
            if self._record_progress and (
                time.monotonic() - self._progress_written >= progress.PROGRESS_INTERVAL
            ):
                await self._write_progress(consumer)

    async def _write_progress(self, consumer: AIOKafkaConsumer) -> None:
        """Record how far each assigned partition has been read (after its commits)."""
        read: dict[progress.Partition, Any] = {}
        marks = self._watermarks
        if marks is not None:
            await marks.drain()
        for tp in consumer.assignment():
            key = (tp.topic, tp.partition)
            high, polled = consumer.highwater(tp), consumer.last_poll_timestamp(tp)
            if high is None or not polled:
                read[key] = None  # not fetched yet: nothing is known about it
                continue
            try:
                position = await consumer.position(tp)  # known once fetched: no wait
            except IllegalStateError:
                continue  # revoked meanwhile: its new owner reports it
            if marks is not None and marks.vouched(tp.topic):
                # Its producer says how far it has published: only that counts.
                read[key] = marks.through(tp.topic, tp.partition, position)
            elif position >= high:
                read[key] = progress.from_millis(polled)
            elif tp in self._last_stamp:
                read[key] = progress.from_millis(self._last_stamp[tp])
            else:
                read[key] = None
        try:
            async with self._sessionmaker() as session, session.begin():
                await progress.record(session, read)
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            log.warning("cannot record consumer progress (%s); will retry", exc)
            return
        self._progress_written = time.monotonic()
        for callback in self.on_progress:
            callback()

    async def _commit_polled(self, consumer: AIOKafkaConsumer,
                             batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Commit what the poll applied, in one request, then report each partition's lag.

        Partitions revoked while the poll was applied are left out: the new owner
        redelivers from the last commit, and the inbox turns that into a no-op.
        """
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()
                   if tp in consumer.assignment()}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # A partition moved to another replica meanwhile; it will redeliver.
            log.warning("offset commit refused after a rebalance: %s", exc)
            return
        for tp, offset in offsets.items():
            if tp not in consumer.assignment():
                continue  # revoked during the commit: its lag is the new owner's to report
            high = consumer.highwater(tp)
            if high is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                    max(high - offset, 0))

    async def _apply_batch(self, what: TopicPartition | str, records: list[ConsumerRecord]
                           ) -> bool:
        """Apply ``records`` (of ``what``: partitions, for the logs) in one transaction;
        False when stopping while the database is away."""
        backoff = 0.2
        while True:
            try:
                try:
                    async with self._sessionmaker() as session, session.begin():
                        outcomes = await self._apply_fast(session, records)
                except _HandlerFailed:
                    # Rolled back: apply the batch message by message, isolating the
                    # failing one in savepoints so the rest still commit.
                    async with self._sessionmaker() as session, session.begin():
                        for record in records:
                            await self._apply(session, record)
                    return True
                for (topic, event_type, outcome), n in Counter(outcomes).items():
                    metrics.EVENTS_CONSUMED.labels(topic, event_type, outcome).inc(n)
                return True
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                log.warning("database unavailable while applying %s (%s); retrying in %.1fs",
                            what, exc, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                if self._stopping.is_set():
                    return False
                backoff = min(backoff * 2, 5.0)

    async def _apply_fast(
        self, session: AsyncSession, records: list[ConsumerRecord]
    ) -> list[tuple[str, str, str]]:
        """Apply a batch with one inbox statement and no savepoints.

        Raises ``_HandlerFailed`` (after which the caller's transaction rolls back) when
        anything needs the careful path: an unparseable message or a failing handler.
        Returns (topic, type, outcome) per message, counted only once the batch commits.
        """
        outcomes: list[tuple[str, str, str]] = []
        events: list[tuple[str, CloudEvent[Any]]] = []
        for record in records:
            topic = self._logical(record.topic)
            try:
                event = _parse(record.value or b"")
            except (ValidationError, ValueError):
                raise _HandlerFailed from None
            if event is None:
                outcomes.append((topic, "unknown", "skipped"))
            else:
                events.append((topic, event))
        claimed = await self._claim_all(session, events)
        fresh: list[tuple[str, CloudEvent[Any]]] = []
        for topic, event in events:
            if event.id not in claimed:
                outcomes.append((topic, event.type, "duplicate"))
                continue
            claimed.discard(event.id)  # a second copy in the same batch is a duplicate
            fresh.append((topic, event))
        for run in self._runs(fresh):
            first = run[0][1]
            started = time.perf_counter()
            single = len(run) == 1
            with log_context(event_id=first.id if single else None,
                             ticket_id=first.subject if single else None,
                             event_type=first.type):
                try:
                    handled = await self._handlers.dispatch([event for _, event in run],
                                                            session)
                except Exception as exc:
                    if is_infrastructure_error(exc):
                        raise
                    log.info("handler failed on the fast path; applying the batch one by one",
                             exc_info=True)
                    raise _HandlerFailed from exc
            # Every event of a run waited for the whole run: that is its processing time.
            elapsed, now = time.perf_counter() - started, utcnow()
            outcome = "processed" if handled else "skipped"
            # A run may join events of several topics (one poll reads them all): each is
            # counted under its own.
            for event_topic, event in run:
                metrics.EVENT_PROCESSING.labels(event_topic, event.type).observe(elapsed)
                metrics.EVENT_AGE.labels(event_topic, event.type).observe(
                    max((now - event.time).total_seconds(), 0.0))
                outcomes.append((event_topic, event.type, outcome))
        return outcomes

    def _runs(
        self, events: list[tuple[str, CloudEvent[Any]]]
    ) -> Iterator[list[tuple[str, CloudEvent[Any]]]]:
        """The events in order, as runs of consecutive ones a handler takes together
        (``Handlers.joins``); every other event is a run of its own."""
        run: list[tuple[str, CloudEvent[Any]]] = []
        for item in events:
            if run and not self._handlers.joins(run[-1][1].type, item[1].type):
                yield run
                run = []
            run.append(item)
        if run:
            yield run

    async def _claim_all(
        self, session: AsyncSession, events: list[tuple[str, CloudEvent[Any]]]
    ) -> set[str]:
        """Record every event id in the inbox at once; returns the ids that were new.

        Ids go in sorted order, so two replicas claiming overlapping batches lock them
        in the same order and queue behind each other instead of deadlocking; the one
        that waits sees the other's ids as conflicts and skips them (``InsertNew``: one
        statement for the batch on either database).
        """
        now = utcnow()
        kinds = {event.id: (event.type, topic) for topic, event in events}
        return await _CLAIM(session, [
            {"event_id": i, "event_type": kinds[i][0], "topic": kinds[i][1],
             "processed_at": now} for i in sorted(kinds)])

    async def _apply(self, session: AsyncSession, record: ConsumerRecord) -> None:
        topic = self._logical(record.topic)
        try:
            event = parse_event(record.value or b"")
        except (ValidationError, ValueError) as exc:
            origin = f"raw:{record.topic}:{record.partition}:{record.offset}"
            if await self._claim(session, origin, "unparseable", topic):
                self._dead_letter(session, record, topic, "unparseable", exc)
            metrics.EVENTS_CONSUMED.labels(topic, "unknown", "dead_lettered").inc()
            return
        if event is None:
            metrics.EVENTS_CONSUMED.labels(topic, "unknown", "skipped").inc()
            return
        with log_context(event_id=event.id, ticket_id=event.subject, event_type=event.type):
            outcome = await self._apply_event(session, record, topic, event)
            metrics.EVENTS_CONSUMED.labels(topic, event.type, outcome).inc()

    async def _apply_event(
        self, session: AsyncSession, record: ConsumerRecord, topic: str, event: CloudEvent[Any]
    ) -> str:
        last_error: Exception | None = None
        for attempt in range(1, self._settings.handler_max_attempts + 1):
            started = time.perf_counter()
            try:
                async with session.begin_nested():
                    if not await self._claim(session, event.id, event.type, topic):
                        return "duplicate"
                    handled = await self._handlers.dispatch([event], session)
            except Exception as exc:
                if is_infrastructure_error(exc):
                    raise
                last_error = exc
                log.warning("handler failed (attempt %d of %d)", attempt,
                            self._settings.handler_max_attempts, exc_info=True)
                await asyncio.sleep(0.05 * attempt)
                continue
            metrics.EVENT_PROCESSING.labels(topic, event.type).observe(
                time.perf_counter() - started
            )
            metrics.EVENT_AGE.labels(topic, event.type).observe(
                max((utcnow() - event.time).total_seconds(), 0.0)
            )
            return "processed" if handled else "skipped"
        assert last_error is not None
        # Claimed outside the failed savepoints, so a redelivery is not dead-lettered twice.
        if await self._claim(session, event.id, event.type, topic):
            self._dead_letter(session, record, topic, "handler_failed", last_error)
        return "dead_lettered"

    async def _claim(
        self, session: AsyncSession, event_id: str, event_type: str, topic: str
    ) -> bool:
        """Record ``event_id`` in the inbox; False when it was already there.

        A concurrent replica holding the same id makes the insert wait for it, then fail,
        so exactly one of them applies the event.
        """
        try:
            async with session.begin_nested():
                await session.execute(
                    insert(inbox).values(
                        event_id=event_id, event_type=event_type, topic=topic,
                        processed_at=utcnow(),
                    )
                )
        except IntegrityError:
            return False
        return True

    def _dead_letter(
        self,
        session: AsyncSession,
        record: ConsumerRecord,
        topic: str,
        reason: str,
        error: BaseException,
    ) -> None:
        metrics.DEAD_LETTERED.labels(topic, reason).inc()
        value: bytes = record.value or b""
        try:
            text_value: str | None = value.decode()
            encoded = None
        except UnicodeDecodeError:
            text_value, encoded = None, base64.b64encode(value).decode()
        letter = {
            "reason": reason,
            "error": f"{type(error).__name__}: {error}"[:4000],
            "service": self._settings.service_name,
            "consumer_group": self._settings.consumer_group,
            "origin": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp_ms": record.timestamp,
                "key": record.key.decode(errors="replace") if record.key else None,
            },
            "value": text_value,
            "value_base64": encoded,
            "dead_lettered_at": utcnow().isoformat(),
        }
        log.error("dead-lettering message from %s[%d]@%d: %s", record.topic, record.partition,
                  record.offset, letter["error"])
        key = f"{record.topic}:{record.partition}:{record.offset}"
        enqueue(
            session,
            topic=DLQ,
            key=record.key.decode(errors="replace") if record.key else key,
            event_id=f"dlq:{self._settings.consumer_group}:{key}",
            event_type=f"dlq.{reason}",
            payload=json.dumps(letter),
        )

    def _logical(self, topic: str) -> str:
        prefix = self._settings.topic_prefix
        return topic[len(prefix):] if prefix and topic.startswith(prefix) else topic


__all__ = ["ConsumerRunner", "Handlers", "is_infrastructure_error"]
