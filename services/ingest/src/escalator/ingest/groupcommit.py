"""Group commit: single-event requests that arrive together share one transaction.

A transaction per request costs a connection checkout, BEGIN, the lookups, the inserts
and a COMMIT (plus a relay wake-up) for one ticket. Instead, while a transaction is in
flight, the requests arriving meanwhile wait; when it ends they all go into the next
one, through the same set-based path as the batch form (``batch.ingest_many``). A lone
request therefore starts its transaction at once (no added delay when idle), and under
load each transaction carries everything that queued behind the previous one.

Each request still gets its own answer, and only after the transaction holding its
event has committed (nothing is acknowledged that a crash could lose). A refused event
(a ``Problem``) is rolled back to its own savepoint and answered with that problem;
the others of the group are stored. If the transaction fails as a whole (a database
error, a race with another replica outside a savepoint), each event of the group is
retried alone in its own transaction, so one event's failure is never another's.
Ordering between concurrent requests is whatever order they reached the queue, which
is as good as the order separate transactions would have committed in.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalator.ingest import batch, metrics
from escalator.ingest.config import IngestConfig
from escalator.ingest.inbound import Inbound
from escalator.ingest.service import Outcome


@dataclass
class _Waiting:
    inbound: Inbound
    answer: asyncio.Future[Outcome]


class GroupCommit:
    """One per process; ``submit`` is safe to call from any number of requests."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], config: IngestConfig,
                 *, max_group: int = 500, linger: float = 0.002) -> None:
        self._sessionmaker = sessionmaker
        self._linger = linger
        self._config = config
        self._max_group = max_group
        self._queue: list[_Waiting] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, inbound: Inbound) -> Outcome:
        """Store ``inbound`` and answer once its transaction has committed."""
        waiting = _Waiting(inbound, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="ingest group commit")
        # Shielded: a client that goes away must not cancel the answer its group awaits.
        return await asyncio.shield(waiting.answer)

    async def _drain(self) -> None:
        while self._queue:
            # A short linger lets requests already received but not yet parsed join the
            # group: every commit also wakes the outbox relay, so fewer, larger
            # transactions are what keeps up under open-loop load.
            await asyncio.sleep(self._linger)
            group = self._queue[:self._max_group]
            del self._queue[:self._max_group]
            metrics.GROUP_COMMIT_EVENTS.observe(len(group))
            try:
                await self._commit(group)
            except Exception as exc:  # noqa: BLE001 - answered below, one event at a time
                if len(group) == 1:
                    _fail(group[0], exc)
                else:
                    for waiting in group:
                        await self._commit_alone(waiting)
            finally:
                for waiting in group:  # only when cancelled (shutdown) mid-transaction
                    _fail(waiting, RuntimeError("ingest stopped before the event was stored"))

    async def _commit(self, group: list[_Waiting]) -> None:
        outcomes = await batch.store_many(
            self._sessionmaker, list(enumerate(w.inbound for w in group)), self._config)
        for index, waiting in enumerate(group):
            outcome = outcomes[index]
            if isinstance(outcome, Outcome):
                _answer(waiting, outcome)
            else:
                _fail(waiting, outcome)

    async def _commit_alone(self, waiting: _Waiting) -> None:
        try:
            await self._commit([waiting])
        except Exception as exc:  # noqa: BLE001 - the request raises it as if it ran alone
            _fail(waiting, exc)


def _answer(waiting: _Waiting, outcome: Outcome) -> None:
    if not waiting.answer.done():
        waiting.answer.set_result(outcome)


def _fail(waiting: _Waiting, exc: BaseException) -> None:
    if not waiting.answer.done():
        waiting.answer.set_exception(exc)
