"""Producer watermarks: a relay vouches for how far it has published, so a consumer that
acts on time can tell "read to the end" from "read everything that happened".

The read horizon (``escalator.shared.progress``) took a consumer that had read a
partition to its end as having read everything appended before that fetch. That is
true of the log, not of the producers: while a relay has a backlog, events that
happened long ago are not in the log yet. ``make chaos`` showed it: an acknowledgement
committed in ingest while the broker was frozen waited in ingest's outbox; at SIGCONT
the sla-timer read every partition to its end, moved its horizon past the deadline and
breached the ticket before ingest's relay had republished its backlog (one ticket of
1,000 answered in time, in one full run of two).

So every relay says how far it is. After a pass that took every unsent row (fewer than a
batch), every event committed before the moment of that read is in Kafka, and so is
every event stamped before the oldest transaction of the service still open then
(``outbox._covered_until``: a slow commit must not be vouched for before it lands);
the relay writes to ``<topic>.watermarks`` (one partition per data topic) the earlier
of those moments and the end offset of each of the topic's partitions, read after its
sends were acknowledged.
A consumer whose position on a partition has reached the offset vouched for it has
applied everything the producer made there before the moment. The relay does this every
``watermark_interval_seconds`` while it leads (ten times less often once it has been
idle a while: ``Relay._vouch_due``), so the horizon trails the present by about that
interval, which the sla-timer's breach grace (1 s) covers. A producer that stops
(crash, broker outage) stops vouching, and the horizon of its topic waits for it
instead of assuming it had nothing to say.

A topic whose watermark topic has never held a record (events written by something that
does not vouch: a test, a tool) keeps the old rule, so nothing waits for a producer that
will never speak.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from escalator.shared.settings import ServiceSettings

log = logging.getLogger(__name__)

#: Watermarks kept per topic while a consumer is behind them: at one every half second,
#: ten minutes. Older ones fall off; the horizon then waits for a newer one (safe).
KEPT = 1_200
#: How long start-up may take to read each watermark topic's last record.
STARTUP_READ_SECONDS = 15.0


def watermark_topic(topic: str) -> str:
    """The logical topic holding ``topic``'s watermarks."""
    return f"{topic}.watermarks"


def encode(through: datetime, offsets: list[int]) -> bytes:
    return json.dumps({"through": through.isoformat(), "offsets": offsets}).encode()


def decode(raw: bytes | None) -> tuple[datetime, list[int]]:
    """A watermark record's moment and offsets; ValueError when it is not one."""
    try:
        value = json.loads(raw or b"")
        through = datetime.fromisoformat(value["through"])
        offsets = [int(o) for o in value["offsets"]]
    except (TypeError, KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a watermark: {exc}") from None
    if through.tzinfo is None:
        raise ValueError("not a watermark: naive moment")
    return through, offsets


async def vouch(settings: ServiceSettings, producer: AIOKafkaProducer,
                offsets: AIOKafkaConsumer, topics: list[str], through: datetime) -> None:
    """Publish ``through`` for each logical topic in ``topics``: everything the caller
    committed before it has been acknowledged by the broker (the caller's duty)."""
    for topic in topics:
        name = settings.topic(topic)
        partitions = sorted(await producer.partitions_for(name))
        ends = await offsets.end_offsets([TopicPartition(name, p) for p in partitions])
        value = encode(through, [ends[TopicPartition(name, p)] for p in partitions])
        await producer.send_and_wait(settings.topic(watermark_topic(topic)), value,
                                     partition=0)


class WatermarkReader:
    """Follows the watermark topics of the topics a consumer reads (no group: every
    replica needs every watermark) and answers, per partition, up to what moment a
    position covers everything its producer made."""

    def __init__(self, settings: ServiceSettings, topics: list[str], *,
                 fetch_wait_ms: int) -> None:
        self._settings = settings
        #: Each watermark partition -> the physical data topic it vouches for.
        self._topic_of = {TopicPartition(settings.topic(watermark_topic(t)), 0): settings.topic(t)
                          for t in topics}
        self._marks: dict[str, deque[tuple[datetime, list[int]]]] = {}
        self._floor: dict[tuple[str, int], datetime] = {}
        self._fetch_wait_ms = fetch_wait_ms
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Read each watermark topic's last record, so a topic a producer vouches for
        is known as such before the first progress write (``vouched``)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers, group_id=None,
            enable_auto_commit=False, client_id=f"escalator-{self._settings.service_name}",
            fetch_max_wait_ms=self._fetch_wait_ms)
        await consumer.start()
        try:
            await consumer.topics()
            present = [tp for tp in self._topic_of if consumer.partitions_for_topic(tp.topic)]
            for tp in self._topic_of:
                if tp not in present:
                    log.warning("watermark topic %s does not exist; %s keeps the old "
                                "read-horizon rule", tp.topic, self._topic_of[tp])
            consumer.assign(present)
            ends = await consumer.end_offsets(present) if present else {}
            for tp in present:
                consumer.seek(tp, max(ends[tp] - 1, 0))
            deadline = time.monotonic() + STARTUP_READ_SECONDS
            while [tp for tp in present if await consumer.position(tp) < ends[tp]]:
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError("could not read the last watermarks")
                self._take(await consumer.getmany(timeout_ms=self._fetch_wait_ms))
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def drain(self) -> None:
        """Take the watermarks fetched since the last call (no wait)."""
        if self._consumer is not None:
            self._take(await self._consumer.getmany(timeout_ms=0))

    def _take(self, batches: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in batches.items():
            topic = self._topic_of.get(tp)
            if topic is None:
                continue
            marks = self._marks.setdefault(topic, deque(maxlen=KEPT))
            for record in records:
                try:
                    marks.append(decode(record.value))
                except ValueError as exc:
                    log.warning("skipping %s@%d: %s", tp.topic, record.offset, exc)

    def vouched(self, topic: str) -> bool:
        """Whether a producer has ever vouched for physical ``topic``."""
        return bool(self._marks.get(topic))

    def through(self, topic: str, partition: int, position: int) -> datetime | None:
        """The latest moment before which everything on the partition lies below
        ``position`` (applied), or None when no watermark is reached yet."""
        best = self._floor.get((topic, partition))
        for moment, offsets in reversed(self._marks.get(topic, ())):
            if partition < len(offsets) and offsets[partition] <= position:
                if best is None or moment > best:
                    best = self._floor[(topic, partition)] = moment
                break
        return best


__all__ = ["WatermarkReader", "decode", "encode", "vouch", "watermark_topic"]
