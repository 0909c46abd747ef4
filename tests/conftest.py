from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from scripts.devstack import Broker, free_port
from tests.support import PG_URL, Env, drop_schemas, new_prefix


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(free_port(), tmp_path_factory.mktemp("broker") / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
async def postgres_available() -> None:
    engine = create_async_engine(PG_URL)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL}: {exc} (make test starts it)")
    finally:
        await engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
async def env(
    request: pytest.FixtureRequest, broker: Broker, tmp_path: Path, postgres_available: None
) -> AsyncIterator[Env]:
    """A fresh topic prefix and database, once per backend, for one test."""
    env = Env(broker=broker, backend=request.param, tmp_path=tmp_path, prefix=new_prefix())
    yield env
    if env.backend == "postgresql":
        await drop_schemas(env.prefix)


@pytest.fixture
async def pg_env(
    broker: Broker, tmp_path: Path, postgres_available: None
) -> AsyncIterator[Env]:
    """PostgreSQL only, for tests of PostgreSQL-specific behaviour."""
    env = Env(broker=broker, backend="postgresql", tmp_path=tmp_path, prefix=new_prefix())
    yield env
    await drop_schemas(env.prefix)
