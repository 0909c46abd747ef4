"""The dispatcher: sends pending deliveries, outside any database transaction.

Each round claims a batch of due deliveries in a short transaction (leasing them), then
POSTs them, then records each outcome in its own short transaction together with the
``notification.*`` event. A replica that dies mid-send leaves its claims to be retried
once the lease runs out; the ``Idempotency-Key`` header (the delivery id) lets the
receiver drop that rare second copy. Deliveries about one ticket are sent one after
another so a receiver sees "assigned" before "escalated"; different tickets go in
parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalator.notifier import metrics, service
from escalator.notifier.service import Claim
from escalator.notifier.settings import NotifierSettings
from escalator.notifier.signing import SIGNATURE_HEADER, signature
from escalator.shared.app import Runtime
from escalator.shared.consumer import is_infrastructure_error
from escalator.shared.events import utcnow
from escalator.shared.logs import log_context

log = logging.getLogger(__name__)

#: Key of the running dispatcher in ``Runtime.extras``, for handlers that wake it.
DISPATCHER = "notifier.dispatcher"
_SNIPPET = 300


@dataclass(frozen=True)
class Attempt:
    """The result of one send: delivered, or an error that may be worth retrying."""

    ok: bool
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


class Dispatcher:
    def __init__(
        self,
        settings: NotifierSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._transport = transport
        self._wake = asyncio.Event()
        self._lease = timedelta(seconds=settings.delivery_lease_seconds)

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next idle tick."""
        self._wake.set()

    async def run(self) -> None:
        """Loop until cancelled; database outages are waited out, never fatal."""
        client = httpx.AsyncClient(
            transport=self._transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=self._settings.delivery_concurrency),
            headers={"User-Agent": "Escalator-Notifier/0.1"},
        )
        backoff = 0.2
        try:
            while True:
                try:
                    self._wake.clear()
                    if not await self.dispatch_once(client):
                        await self._idle()
                    backoff = 0.2
                except Exception as exc:
                    if not is_infrastructure_error(exc):
                        raise
                    log.warning("dispatcher cannot reach the database (%s); retrying in %.1fs",
                                exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            await client.aclose()

    async def dispatch_once(self, client: httpx.AsyncClient) -> bool:
        """Claim and send one batch; False when nothing was due."""
        async with self._sessionmaker() as session, session.begin():
            claims = await service.claim_due(session, now=utcnow(), lease=self._lease,
                                             limit=self._settings.delivery_batch_size)
        if not claims:
            return False
        by_ticket: dict[str, list[Claim]] = defaultdict(list)
        for claim in claims:
            by_ticket[claim.ticket_id].append(claim)
        gate = asyncio.Semaphore(self._settings.delivery_concurrency)

        async def send_in_order(group: list[Claim]) -> None:
            async with gate:
                for claim in group:
                    await self._deliver(client, claim)

        await asyncio.gather(*(send_in_order(group) for group in by_ticket.values()))
        return True

    async def _idle(self) -> None:
        async with self._sessionmaker() as session:
            pending, next_due = await service.pending_stats(session)
        metrics.PENDING.set(pending)
        wait = self._settings.dispatcher_idle_seconds
        if next_due is not None:
            wait = min(max((next_due - utcnow()).total_seconds(), 0.0), wait)
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _deliver(self, client: httpx.AsyncClient, claim: Claim) -> None:
        with log_context(ticket_id=claim.ticket_id, event_id=claim.about_event_id,
                         delivery_id=claim.id):
            started = time.perf_counter()
            attempt = await self._post(client, claim)
            metrics.DELIVERY_SECONDS.labels(claim.channel).observe(time.perf_counter() - started)
            if attempt.ok:
                outcome = "sent"
            elif attempt.retryable and claim.attempts < self._settings.delivery_max_attempts:
                outcome = "retried"
            else:
                outcome = "failed"
            await self._record(claim, outcome, attempt)

    async def _post(self, client: httpx.AsyncClient, claim: Claim) -> Attempt:
        body = claim.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": claim.id,
            "X-Escalator-Event-Type": claim.about_event_type,
            "X-Escalator-Delivery-Attempt": str(claim.attempts),
        }
        secret = self._settings.webhook_secret
        if secret is not None:
            headers[SIGNATURE_HEADER] = signature(secret.get_secret_value(), body,
                                                  int(time.time()))
        timeout = self._settings.webhook_timeout_seconds
        try:
            # One deadline for the whole exchange: httpx's own timeouts are per read, so
            # a receiver dripping bytes could otherwise hold a send past its lease.
            async with asyncio.timeout(timeout):
                async with client.stream("POST", claim.recipient, content=body,
                                         headers=headers, timeout=timeout) as response:
                    snippet = await _read_snippet(response)
        except TimeoutError:
            return Attempt(False, f"timed out after {timeout:g}s", retryable=True)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return Attempt(False, f"bad destination: {exc}")
        except httpx.HTTPError as exc:
            return Attempt(False, f"{type(exc).__name__}: {exc}"[:1000], retryable=True)
        status = response.status_code
        if 200 <= status < 300:
            return Attempt(True)
        error = f"HTTP {status}: {snippet}".strip()
        if status in (408, 429) or status >= 500:
            return Attempt(False, error, retryable=True,
                           retry_after=_retry_after(response.headers.get("Retry-After")))
        return Attempt(False, error)

    def _next_attempt(self, claim: Claim, retry_after: float | None) -> datetime:
        settings = self._settings
        delay = min(settings.delivery_backoff_seconds * 2 ** (claim.attempts - 1),
                    settings.delivery_backoff_max_seconds)
        # Jitter spreads the retries of a burst that failed together.
        delay = delay / 2 + random.uniform(0, delay / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, settings.delivery_backoff_max_seconds))
        return utcnow() + timedelta(seconds=delay)

    async def _record(self, claim: Claim, outcome: str, attempt: Attempt) -> None:
        """Store the outcome, retrying through short database outages.

        Gives up once half the lease is gone: the delivery is then simply claimed and
        sent again, which the receiver's idempotency check absorbs.
        """
        deadline = time.monotonic() + self._settings.delivery_lease_seconds / 2
        backoff = 0.2
        while True:
            try:
                async with self._sessionmaker() as session, session.begin():
                    if outcome == "sent":
                        settled = await service.mark_sent(session, claim)
                    elif outcome == "retried":
                        at = self._next_attempt(claim, attempt.retry_after)
                        settled = await service.mark_retry(session, claim,
                                                           error=attempt.error or "", at=at)
                    else:
                        settled = await service.mark_failed(session, claim,
                                                            error=attempt.error or "")
                break
            except Exception as exc:
                if not is_infrastructure_error(exc) or time.monotonic() > deadline:
                    raise
                log.warning("cannot record delivery outcome (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        if not settled:
            log.warning("delivery %s was taken over by another sender; outcome dropped",
                        claim.id)
            return
        metrics.DELIVERIES.labels(claim.channel, outcome).inc()
        level = logging.INFO if outcome == "sent" else logging.WARNING
        log.log(level, "delivery %s %s after %d attempt(s)%s", claim.id, outcome, claim.attempts,
                f": {attempt.error}" if attempt.error else "")


async def _read_snippet(response: httpx.Response) -> str:
    """The start of the answer, for the error log; the rest is never read into memory."""
    chunks = b""
    async for chunk in response.aiter_bytes():
        chunks += chunk
        if len(chunks) >= _SNIPPET:
            break
    return chunks[:_SNIPPET].decode(errors="replace")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date; the exponential backoff is good enough


async def run_dispatcher(runtime: Runtime) -> None:
    """Worker entry: the dispatcher installed at start-up, run until shutdown."""
    dispatcher: Dispatcher = runtime.extras[DISPATCHER]
    await dispatcher.run()
