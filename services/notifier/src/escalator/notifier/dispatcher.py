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

from escalator.notifier import metrics, service, smtp
from escalator.notifier.guard import DestinationRefused, Guard
from escalator.notifier.service import Claim
from escalator.notifier.settings import NotifierSettings
from escalator.notifier.signing import SIGNATURE_HEADER, signature, standard_headers
from escalator.shared.app import Runtime
from escalator.shared.consumer import is_infrastructure_error
from escalator.shared.events import utcnow
from escalator.shared.logs import log_context

log = logging.getLogger(__name__)

#: Key of the running dispatcher in ``Runtime.extras``, for handlers that wake it.
DISPATCHER = "notifier.dispatcher"
_SNIPPET = 300
_RECORD_CHUNK = 50


@dataclass(frozen=True)
class Attempt:
    """The result of one send: delivered, or an error that may be worth retrying."""

    ok: bool
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one claim, waiting to be stored with others of its batch."""

    claim: Claim
    outcome: str
    attempt: Attempt
    at: datetime | None = None


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
        self._guard = Guard(settings.webhook_allowed_hosts, settings.webhook_private_allowed,
                            [settings.webhook_url] if settings.webhook_url else [])
        self._secrets = [s.get_secret_value() for s in settings.webhook_signing_secrets]
        self._breaker = Breaker(settings.breaker_failures, settings.breaker_pause_seconds)

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
        done: list[Outcome] = []

        async def send_in_order(group: list[Claim]) -> None:
            nonlocal done
            async with gate:
                for claim in group:
                    done.append(await self._deliver(client, claim))
                    if len(done) >= _RECORD_CHUNK:
                        # Outcomes are stored in chunks: one transaction for many sends
                        # is what lets one instance keep up with a burst.
                        chunk, done = done, []
                        await self._record(chunk)

        await asyncio.gather(*(send_in_order(group) for group in by_ticket.values()))
        if done:
            await self._record(done)
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

    async def _deliver(self, client: httpx.AsyncClient, claim: Claim) -> Outcome:
        with log_context(ticket_id=claim.ticket_id, event_id=claim.about_event_id,
                         delivery_id=claim.id):
            destination = "smtp" if claim.channel == "email" else claim.recipient
            paused_until = self._breaker.paused_until(destination)
            if paused_until is not None:
                return Outcome(claim, "paused", Attempt(
                    False, f"destination paused after {self._breaker.threshold} consecutive "
                    "failures"), paused_until)
            started = time.perf_counter()
            if claim.channel == "email":
                attempt = await self._email(claim)
            else:
                attempt = await self._post(client, claim)
            self._breaker.observe(destination, ok=attempt.ok or not attempt.retryable)
            metrics.DELIVERY_SECONDS.labels(claim.channel).observe(time.perf_counter() - started)
            if attempt.ok:
                outcome = "sent"
            elif attempt.retryable and claim.attempts < self._settings.delivery_max_attempts:
                outcome = "retried"
            else:
                outcome = "failed"
            at = self._next_attempt(claim, attempt.retry_after) if outcome == "retried" else None
            return Outcome(claim, outcome, attempt, at)

    async def _email(self, claim: Claim) -> Attempt:
        try:
            message = smtp.build(self._settings, claim.id, claim.ticket_id, claim.payload)
            await smtp.send(self._settings, message)
        except smtp.EmailError as exc:
            return Attempt(False, str(exc), retryable=exc.retryable)
        return Attempt(True)

    async def _post(self, client: httpx.AsyncClient, claim: Claim) -> Attempt:
        try:
            await self._guard.check(claim.recipient)
        except DestinationRefused as exc:
            return Attempt(False, f"destination refused: {exc}")
        body = claim.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": claim.id,
            "X-Escalator-Event-Type": claim.about_event_type,
            "X-Escalator-Ticket": claim.ticket_id,
            "X-Escalator-Delivery-Attempt": str(claim.attempts),
        }
        now = int(time.time())
        secret = self._settings.webhook_secret
        if secret is not None:
            headers[SIGNATURE_HEADER] = signature(secret.get_secret_value(), body, now)
        if self._secrets:
            # webhook-id is the delivery id: stable across retries, as the spec asks.
            headers.update(standard_headers(self._secrets, claim.id, now, body))
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

    async def _record(self, outcomes: list[Outcome]) -> None:
        """Store outcomes in one transaction, retrying through short database outages.

        Gives up once half the lease is gone: the deliveries are then simply claimed and
        sent again, which the receiver's idempotency check absorbs.
        """
        deadline = time.monotonic() + self._settings.delivery_lease_seconds / 2
        backoff = 0.2
        while True:
            try:
                async with self._sessionmaker() as session, session.begin():
                    settled = [await self._settle(session, o) for o in outcomes]
                break
            except Exception as exc:
                if not is_infrastructure_error(exc) or time.monotonic() > deadline:
                    raise
                log.warning("cannot record delivery outcomes (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        for outcome, ok in zip(outcomes, settled, strict=True):
            claim, attempt = outcome.claim, outcome.attempt
            if not ok:
                log.warning("delivery %s was taken over by another sender; outcome dropped",
                            claim.id)
                continue
            metrics.DELIVERIES.labels(claim.channel, outcome.outcome).inc()
            level = logging.INFO if outcome.outcome == "sent" else logging.WARNING
            with log_context(ticket_id=claim.ticket_id, delivery_id=claim.id):
                log.log(level, "delivery %s %s after %d attempt(s)%s", claim.id,
                        outcome.outcome, claim.attempts,
                        f": {attempt.error}" if attempt.error else "")

    @staticmethod
    async def _settle(session: AsyncSession, outcome: Outcome) -> bool:
        claim, error = outcome.claim, outcome.attempt.error or ""
        if outcome.outcome == "sent":
            return await service.mark_sent(session, claim)
        if outcome.outcome == "paused":
            return await service.mark_paused(session, claim, error=error,
                                             at=outcome.at or utcnow())
        if outcome.outcome == "retried":
            return await service.mark_retry(session, claim, error=error,
                                            at=outcome.at or utcnow())
        return await service.mark_failed(session, claim, error=error)


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
