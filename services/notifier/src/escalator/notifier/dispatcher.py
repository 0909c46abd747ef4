"""The dispatcher: sends pending deliveries, outside any database transaction.

Due deliveries are claimed in batches, one statement each (leasing them), and a new
batch is claimed as soon as half of the last one has been sent, so a slow send never
holds up the rest. Outcomes are recorded as they come in: whatever finished while the
previous write was in flight goes into the next one, in one transaction with its
``notification.*`` events (group commit).

Concurrency is bounded twice: ``delivery_concurrency`` sends in all, and
``delivery_per_destination`` to any one destination, taken first, so a slow destination
holds only its own share. One ticket's deliveries are sent one after another, in the
order they were made, so a receiver sees "assigned" before "escalated". A send starts
only if its deadline falls within the lease; otherwise the claim is handed back untried
rather than risk a second sender. A replica that dies between a send and its record
leaves the claim to be sent again once the lease runs out, under the same
``webhook-id`` / ``Idempotency-Key`` (the delivery id), which the receiver uses to drop
the copy.

Nothing is claimed while the consumer has not read every partition to within
``delivery_read_lag_seconds`` of the present (the read horizon,
``escalator.shared.progress``): after downtime the backlog is read first, and what it
makes moot (a ticket resolved meanwhile) is cancelled by the planner, not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalator.notifier import http, metrics, service, smtp
from escalator.notifier.breaker import Breaker
from escalator.notifier.guard import DestinationRefused, Guard
from escalator.notifier.service import Claim
from escalator.notifier.settings import NotifierSettings
from escalator.notifier.signing import SIGNATURE_HEADER, signature, standard_headers
from escalator.shared import progress
from escalator.shared.app import Runtime
from escalator.shared.consumer import ConsumerRunner, is_infrastructure_error
from escalator.shared.events import utcnow
from escalator.shared.logs import log_context

log = logging.getLogger(__name__)

#: Key of the running dispatcher in ``Runtime.extras``, for handlers that wake it.
DISPATCHER = "notifier.dispatcher"
_FIRST_BACKOFF = 0.2
_SMTP = "smtp"


@dataclass(frozen=True)
class Attempt:
    """The result of one send: delivered, or an error that may be worth retrying."""

    ok: bool
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one claim, waiting to be stored with others of its batch.

    ``released`` means never tried: the lease would not have covered the send."""

    claim: Claim
    outcome: str
    attempt: Attempt
    at: datetime | None = None


class Dispatcher:
    def __init__(self, settings: NotifierSettings,
                 sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._wake = asyncio.Event()
        self._lease = timedelta(seconds=settings.delivery_lease_seconds)
        self._guard = Guard(settings.webhook_allowed_hosts, settings.webhook_private_allowed,
                            [settings.webhook_url] if settings.webhook_url else [])
        self._secrets = [s.get_secret_value() for s in settings.webhook_signing_secrets]
        self._breaker = Breaker(settings.breaker_failures, settings.breaker_pause_seconds)
        self._client = http.Client()
        self._gate = asyncio.Semaphore(settings.delivery_concurrency)
        self._lanes: dict[str, asyncio.Semaphore] = {}
        self._per_destination = settings.delivery_per_destination
        #: Claims waiting to be sent, per ticket, and how many per destination.
        self._queues: dict[str, deque[tuple[Claim, float]]] = {}
        self._unsent: Counter[str] = Counter()
        self._room = asyncio.Event()
        self._backoff = _FIRST_BACKOFF
        #: The topics whose read horizon holds sending back (none: no consumer).
        self._topics: list[str] = []
        self._held = False

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next idle tick."""
        self._wake.set()

    def follow(self, runner: ConsumerRunner) -> None:
        """Hold sending to ``runner``'s read horizon, and look again when it moves."""
        self._topics = runner.topics
        runner.on_progress.append(self._progress)

    def _progress(self) -> None:
        if self._held:
            self._wake.set()

    async def _behind(self, session: AsyncSession, now: datetime) -> bool:
        """Whether a backlog is still unread (see the module docstring)."""
        if not self._topics:
            return False
        read = await progress.horizon(session, self._topics)
        lag = 0.0 if read is None else max((now - read).total_seconds(), 0.0)
        metrics.READ_HORIZON_LAG.set(min(lag, 10 * 365 * 86400.0))
        return lag > self._settings.delivery_read_lag_seconds

    async def run(self) -> None:
        """Loop until cancelled; database outages are waited out, never fatal."""
        try:
            while True:
                try:
                    await self._dispatch()
                except Exception as exc:
                    if not _infrastructure(exc):
                        raise
                    log.warning("dispatcher cannot reach the database (%s); retrying in %.1fs",
                                exc, self._backoff)
                    await asyncio.sleep(self._backoff)
                    self._backoff = min(self._backoff * 2, 5.0)
        finally:
            self._client.close()

    async def _dispatch(self) -> None:
        """One life of the sending loop: an error ends it and every send in flight (their
        claims go back when the lease runs out); a stop still stores the known outcomes."""
        self._queues.clear()
        self._unsent.clear()
        recorder = GroupCommit(self._record)
        try:
            await self._claim_and_send(recorder)
        except asyncio.CancelledError:
            # Stopping: store what was sent already, so the next start does not resend it.
            if leftover := recorder.unwritten():
                await self._record(leftover)
            raise

    async def _claim_and_send(self, recorder: GroupCommit) -> None:
        """Claim more as soon as half a batch has been sent, so one slow send never holds
        up the next batch. A destination with a backlog of twice its share is left out of
        the claims and of the count, so a slow one cannot fill the batch and starve the
        others."""
        size = self._settings.delivery_batch_size
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(recorder.run())
            while True:
                self._wake.clear()
                full = {d for d, n in self._unsent.items() if n >= 2 * self._per_destination}
                room = size - sum(n for d, n in self._unsent.items() if d not in full)
                if room * 2 < size:
                    self._room.clear()
                    await self._room.wait()
                    continue
                leased_until = time.monotonic() + self._settings.delivery_lease_seconds
                async with self._sessionmaker() as session, session.begin():
                    now = utcnow()
                    self._held = await self._behind(session, now)
                    claims = [] if self._held else await service.claim_due(
                        session, now=now, lease=self._lease, limit=room,
                        skip_recipients=full - {_SMTP}, skip_email=_SMTP in full)
                self._backoff = _FIRST_BACKOFF
                for claim in claims:
                    self._unsent[_destination(claim)] += 1
                    queue = self._queues.get(claim.ticket_id)
                    if queue is None:
                        queue = self._queues[claim.ticket_id] = deque()
                        tasks.create_task(self._send_ticket(claim.ticket_id, queue, recorder))
                    queue.append((claim, leased_until))
                if len(claims) < room:  # nothing more is due now, but for those left out
                    await self._idle(skipping=bool(full))

    async def _send_ticket(self, ticket_id: str, queue: deque[tuple[Claim, float]],
                           recorder: GroupCommit) -> None:
        """Send one ticket's claims one after another, including those claimed while
        earlier ones were in flight, so a receiver sees them in the order they were made."""
        try:
            while queue:
                claim, leased_until = queue.popleft()
                outcome = await self._deliver(claim, leased_until)
                recorder.add(outcome)
                self._done(claim)
                if outcome.outcome == "released":  # the rest wait too, to keep the order
                    for later, _ in queue:
                        recorder.add(Outcome(later, "released", outcome.attempt))
                        self._done(later)
                    queue.clear()
        finally:
            del self._queues[ticket_id]

    def _done(self, claim: Claim) -> None:
        destination = _destination(claim)
        self._unsent[destination] -= 1
        left = self._unsent[destination]
        if not left:
            del self._unsent[destination]
        if left == 2 * self._per_destination - 1:
            self._wake.set()  # it is no longer left out of the claims
        self._room.set()  # the claim loop sees whether there is room enough now

    async def _idle(self, *, skipping: bool) -> None:
        """Wait for a wake-up, the next due delivery, or the idle tick. While destinations
        are left out of the claims their due deliveries do not count: a wake-up comes
        when one of them has room again."""
        async with self._sessionmaker() as session:
            pending, next_due = await service.pending_stats(session)
        metrics.PENDING.set(pending)
        wait = self._settings.dispatcher_idle_seconds
        if next_due is not None and not skipping and not self._held:
            wait = min(max((next_due - utcnow()).total_seconds(), 0.0), wait)
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _deliver(self, claim: Claim, leased_until: float) -> Outcome:
        with log_context(ticket_id=claim.ticket_id, event_id=claim.about_event_id,
                         delivery_id=claim.id):
            email = claim.channel == "email"
            destination = _destination(claim)
            timeout = (self._settings.smtp_timeout_seconds if email
                       else self._settings.webhook_timeout_seconds)
            lane = self._lanes.get(destination)
            if lane is None:
                lane = self._lanes[destination] = asyncio.Semaphore(self._per_destination)
            async with lane, self._gate:  # the destination's share first: see the module
                if time.monotonic() + timeout >= leased_until:
                    return Outcome(claim, "released", Attempt(False))
                paused_until = self._breaker.paused_until(destination)
                if paused_until is not None:
                    return Outcome(claim, "paused", Attempt(
                        False, f"destination paused after {self._breaker.threshold} "
                        "consecutive failures"), paused_until)
                started = time.perf_counter()
                attempt = await (self._email(claim) if email else self._post(claim))
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

    async def _post(self, claim: Claim) -> Attempt:
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
            # One deadline for the whole exchange, connecting included, so a receiver
            # dripping bytes cannot hold a send past its lease.
            async with asyncio.timeout(timeout):
                response = await self._client.post(claim.recipient, body, headers)
        except TimeoutError:
            return Attempt(False, f"timed out after {timeout:g}s", retryable=True)
        except http.BadDestination as exc:
            return Attempt(False, f"bad destination: {exc}")
        except http.HttpError as exc:
            return Attempt(False, str(exc)[:1000], retryable=True)
        status = response.status
        if 200 <= status < 300:
            return Attempt(True)
        error = f"HTTP {status}: {response.snippet}".strip()
        if status in (408, 429) or status >= 500:
            return Attempt(False, error, retryable=True,
                           retry_after=_retry_after(response.retry_after))
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
                    held = await self._settle(session, outcomes)
                break
            except Exception as exc:
                if not is_infrastructure_error(exc) or time.monotonic() > deadline:
                    raise
                log.warning("cannot record delivery outcomes (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        released = 0
        for outcome in outcomes:
            claim, attempt = outcome.claim, outcome.attempt
            if claim.id not in held:
                log.warning("delivery %s was taken over by another sender; outcome dropped",
                            claim.id)
                continue
            metrics.DELIVERIES.labels(claim.channel, outcome.outcome).inc()
            if outcome.outcome == "released":
                released += 1
                continue
            level = logging.INFO if outcome.outcome == "sent" else logging.WARNING
            with log_context(ticket_id=claim.ticket_id, delivery_id=claim.id):
                log.log(level, "delivery %s %s after %d attempt(s)%s", claim.id,
                        outcome.outcome, claim.attempts,
                        f": {attempt.error}" if attempt.error else "")
        if released:
            log.warning("%d deliveries handed back untried: the lease would have run out "
                        "before they were sent (raise delivery_lease_seconds or lower "
                        "delivery_batch_size)", released)

    @staticmethod
    async def _settle(session: AsyncSession, outcomes: list[Outcome]) -> set[str]:
        """The ids whose outcome was stored: sends and hand-backs in bulk, the rarer
        retries and failures one by one."""
        kinds: dict[str, list[Claim]] = defaultdict(list)
        for outcome in outcomes:
            kinds[outcome.outcome].append(outcome.claim)
        held = {c.id for c in await service.mark_sent(session, kinds["sent"])}
        held |= {c.id for c in await service.release(session, kinds["released"])}
        for outcome in outcomes:
            claim, error = outcome.claim, outcome.attempt.error or ""
            if outcome.outcome == "paused":
                ok = await service.mark_paused(session, claim, error=error,
                                               at=outcome.at or utcnow())
            elif outcome.outcome == "retried":
                ok = await service.mark_retry(session, claim, error=error,
                                              at=outcome.at or utcnow())
            elif outcome.outcome == "failed":
                ok = await service.mark_failed(session, claim, error=error)
            else:
                continue
            if ok:
                held.add(claim.id)
        return held


class GroupCommit:
    """Writes outcomes as they arrive: those that pile up while one write is in flight
    go together in the next, so the batch size follows the load with no timer."""

    def __init__(self, write: Callable[[list[Outcome]], Awaitable[None]]) -> None:
        self._write = write
        self._pending: list[Outcome] = []
        self._writing: list[Outcome] = []
        self._ready = asyncio.Event()

    def add(self, *outcomes: Outcome) -> None:
        self._pending.extend(outcomes)
        self._ready.set()

    def unwritten(self) -> list[Outcome]:
        """What is not stored yet, the write cut short by cancellation included."""
        return self._writing + self._pending

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            self._writing, self._pending = self._pending, []
            if self._writing:
                await self._write(self._writing)
            self._writing = []


def _destination(claim: Claim) -> str:
    """Where a send goes, for the per-destination share and the breaker: the webhook URL,
    or the one SMTP server every email goes through."""
    return _SMTP if claim.channel == "email" else claim.recipient


def _infrastructure(exc: BaseException) -> bool:
    """A database or network outage (also when it ended a task group), not a bug."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_infrastructure(e) for e in exc.exceptions)
    return isinstance(exc, Exception) and is_infrastructure_error(exc)


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
    if runtime.runner is not None:
        dispatcher.follow(runtime.runner)
    await dispatcher.run()
