from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.notifier.helpers import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A fresh webhook receiver per test, answering 200 unless scripted otherwise."""
    server = Receiver()
    await server.start()
    yield server
    await server.stop()
