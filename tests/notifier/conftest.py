from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.notifier.helpers import Mailbox, Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A fresh webhook receiver per test, answering 200 unless scripted otherwise."""
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on a free port for the test's duration."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()
