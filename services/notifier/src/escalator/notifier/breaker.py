"""Circuit breaker: a destination that keeps failing is paused for a while rather than
hammered (its deliveries wait, spending no attempts)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from escalator.notifier import metrics
from escalator.shared.events import utcnow

log = logging.getLogger(__name__)


class Breaker:
    """Per-destination circuit breaker, per replica: consecutive retryable failures open
    it for a pause; the first send after the pause probes, and one success closes it."""

    def __init__(self, threshold: int, pause_seconds: float) -> None:
        self.threshold = threshold
        self._pause = timedelta(seconds=pause_seconds)
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, datetime] = {}

    def paused_until(self, destination: str) -> datetime | None:
        until = self._open_until.get(destination)
        if until is None or until <= utcnow():
            return None
        return until

    def observe(self, destination: str, *, ok: bool) -> None:
        if ok:
            self._failures.pop(destination, None)
            self._open_until.pop(destination, None)
            return
        count = self._failures.get(destination, 0) + 1
        self._failures[destination] = count
        if count >= self.threshold:
            self._open_until[destination] = utcnow() + self._pause
            metrics.BREAKER_OPENED.inc()
            log.warning("pausing %s for %s after %d consecutive failures", destination,
                        self._pause, count)
