"""Kafka clients configured the one way the design allows.

``acks=all`` and no idempotent producer or transactions: the local broker rejects
``InitProducerId``, and the outbox/inbox design makes them unnecessary.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from escalator.shared.events import ALL_TOPICS, DLQ
from escalator.shared.settings import ServiceSettings
from escalator.shared.watermarks import watermark_topic

log = logging.getLogger(__name__)

#: Only a watermark topic's last record matters. Kafka deletes closed segments after a
#: day and rolls one an hour; the active segment, holding the last record, stays however
#: long the producer is silent, so a consumer starting then still finds it. (The
#: memory-only Tansu of ``make run`` keeps everything: ``Relay._vouch_due``.)
WATERMARK_TOPIC_CONFIG = {"retention.ms": str(24 * 3600 * 1000), "segment.ms": str(3600 * 1000)}


def make_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"escalator-{settings.service_name}",
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )


async def broker_reachable(settings: ServiceSettings, timeout: float = 2.0) -> bool:
    """True when a fresh connection gets cluster metadata; used by ``/readyz``."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=int(timeout * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        return True
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()


async def ensure_topics(settings: ServiceSettings, *, attempts: int = 30) -> list[str]:
    """Create every Escalator topic that does not exist yet; safe to run from any replica.

    Retries while the broker comes up, so a launcher or a Compose one-shot job can run it
    right after starting the broker.
    """
    wanted = {settings.topic(name): settings.topic_partitions for name in ALL_TOPICS}
    # One partition each: a producer's watermarks must stay in order.
    marks = {settings.topic(watermark_topic(name)) for name in ALL_TOPICS if name != DLQ}
    wanted |= dict.fromkeys(marks, 1)
    for attempt in range(1, attempts + 1):
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [name for name in wanted if name not in existing]
            if missing:
                await admin.create_topics([
                    NewTopic(name, wanted[name], 1,
                             topic_configs=WATERMARK_TOPIC_CONFIG if name in marks else None)
                    for name in missing])
                log.info("created topics", extra={"topics": missing})
            return missing
        except (KafkaError, OSError) as exc:
            if attempt == attempts:
                raise
            log.warning("broker not ready for topic creation (%s); retrying", exc)
            await asyncio.sleep(min(0.2 * attempt, 2.0))
        finally:
            await admin.close()
    return []


def main() -> None:
    """``python -m escalator.shared.bus``: create the topics (a deploy-time job)."""
    from escalator.shared.logs import configure_logging
    from escalator.shared.settings import load_settings

    settings = load_settings(ServiceSettings)
    configure_logging("topics", level=settings.log_level, fmt=settings.log_format)
    created = asyncio.run(ensure_topics(settings))
    log.info("topics ready", extra={"created": created, "partitions": settings.topic_partitions})


if __name__ == "__main__":
    main()
