"""Test helpers: real broker, real databases, real HTTP servers; nothing mocked.

Each test gets its own topic prefix and its own PostgreSQL schema (or SQLite file), so
tests never see each other's messages or rows and nothing needs cleaning between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from escalator.shared.app import ServiceSpec, create_app
from escalator.shared.bus import ensure_topics
from escalator.shared.settings import ServiceSettings
from scripts.devstack import Broker, free_port

API_KEY = "test-admin-key"
PG_URL = os.environ.get("ESCALATOR_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

S = TypeVar("S", bound=ServiceSettings)
T = TypeVar("T")


@dataclass
class Env:
    """Where a test's services live: broker, database backend, topic prefix."""

    broker: Broker
    backend: str
    tmp_path: Path
    prefix: str

    def settings(self, cls: type[S], **overrides: Any) -> S:
        name = cls.model_fields["service_name"].default
        schema = f"t_{self.prefix.strip('.').replace('-', '_')}_{name.replace('-', '_')}"
        url = (
            PG_URL if self.backend == "postgresql"
            else f"sqlite+aiosqlite:///{self.tmp_path / f'{name}.db'}"
        )
        values: dict[str, Any] = {
            "env": "test",
            "port": free_port(),
            "database_url": url,
            "db_schema": schema,
            "kafka_bootstrap_servers": self.broker.bootstrap,
            "topic_prefix": self.prefix,
            "consumer_group": f"{self.prefix}{name}",
            "topic_partitions": 3,
            "api_key": API_KEY,
            "log_format": "text",
            "outbox_poll_seconds": 0.2,
            "consumer_session_timeout_ms": 6_000,
        }
        values.update(overrides)
        return cls(**values)


class RunningService:
    def __init__(self, spec: ServiceSpec, settings: ServiceSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.base_url = f"http://127.0.0.1:{settings.port}"
        self.app = create_app(spec, settings)
        self.client = httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        )
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    async def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.settings.port,
                                log_config=None, access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        # The test process owns its signals: a service that SIGTERMs itself on a crashed
        # worker must stop only its server, not re-raise the signal into pytest.
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task = asyncio.create_task(self._server.serve())
        await wait_until(lambda: self._server is not None and self._server.started, timeout=30,
                         message=f"{self.spec.name} did not start")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 40)
        await self.client.aclose()


@contextlib.asynccontextmanager
async def running(spec: ServiceSpec, settings: ServiceSettings) -> AsyncIterator[RunningService]:
    await ensure_topics(settings)
    service = RunningService(spec, settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def wait_until(
    condition: Callable[[], Any] | Callable[[], Awaitable[Any]],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    message: str = "condition not met",
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message}")
        await asyncio.sleep(interval)


async def read_topic(
    bootstrap: str, topic: str, *, count: int, timeout: float = 20.0
) -> list[Any]:
    """Read ``count`` records from the start of ``topic`` (all partitions), no group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        partitions = await wait_until(lambda: consumer.partitions_for_topic(topic), timeout=timeout)
        from aiokafka import TopicPartition

        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str, value: bytes, key: bytes | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def explain(conn: Any, statement: Any) -> str:
    """PostgreSQL's plan for ``statement`` (its values inlined), one line per node:
    for tests that a query reads an index, not the whole table."""
    from sqlalchemy.dialects import postgresql

    sql = statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    return "\n".join((await conn.execute(text(f"EXPLAIN {sql}"))).scalars())


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


async def drop_schemas(prefix: str) -> None:
    """Drop the PostgreSQL schemas a test's services made (those of topic ``prefix``)."""
    engine = create_async_engine(PG_URL)
    try:
        async with engine.begin() as conn:
            schemas = (await conn.execute(
                text("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, :p)"),
                {"p": f"t_{prefix.strip('.')}"},
            )).scalars().all()
            for schema in schemas:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await engine.dispose()
