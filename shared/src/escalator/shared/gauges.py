"""Domain gauges counted from the database on a schedule.

Figures like "open tickets by severity" are facts about the service's tables, not about
one replica's traffic, so each replica recounts them from the database and every replica
reports the same value (dashboards take ``max``, not ``sum``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.consumer import is_infrastructure_error

if TYPE_CHECKING:
    from escalator.shared.app import Runtime

log = logging.getLogger(__name__)

Refresh = Callable[[AsyncSession], Awaitable[None]]


def database_gauge(
    refresh: Refresh, interval: float = 15.0
) -> Callable[[Runtime], Awaitable[None]]:
    """A ``ServiceSpec`` worker that runs ``refresh(session)`` every ``interval`` seconds."""

    async def worker(runtime: Runtime) -> None:
        while True:
            try:
                async with runtime.sessionmaker() as session:
                    await refresh(session)
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                log.warning("cannot refresh %s: %s", refresh.__name__, exc)
            await asyncio.sleep(interval)

    worker.__name__ = refresh.__name__
    return worker
