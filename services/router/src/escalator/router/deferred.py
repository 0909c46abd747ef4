"""Moves that came before their ticket: applied once the ticket is routed.

A breach or an escalation request travels on another topic than the ticket's creation,
and nothing orders two topics: a router catching up on a backlog (after an outage, or
behind a slow poll) can read a ticket's breach before the ticket. ``escalate(keep=True)``
then stores the move (``PendingMove``) instead of dropping it, and this sweep applies,
in the order they came, the stored moves of tickets that have been routed since, with
the same ``escalate`` as any move, then deletes them. One mechanism for every way the
two can cross, replicas included: a ticket routed on one replica while another stores
its breach is found by the next sweep, whichever committed first.

Rows are taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas sweep side by
side without applying a move twice. Moves of tickets that never arrive go once they are
older than the inbox's retention: by then no redelivery can bring the ticket.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router import metrics, service
from escalator.router.models import Assignment, PendingMove
from escalator.shared.app import Runtime
from escalator.shared.consumer import is_infrastructure_error
from escalator.shared.events import EscalationKind, utcnow
from escalator.shared.logs import log_context

log = logging.getLogger(__name__)

#: Seconds between sweeps; a move waiting here was already late, a second adds little.
SWEEP_SECONDS = 1.0
#: Moves applied per transaction.
BATCH = 200


async def apply_pending(session: AsyncSession, *, max_age_hours: float) -> int:
    """Apply the stored moves of tickets routed since, oldest first, and drop the
    expired ones (``escalate`` finds no assignment and says so); returns how many."""
    expired = PendingMove.received_at < utcnow() - timedelta(hours=max_age_hours)
    query = (select(PendingMove)
             .where(or_(PendingMove.ticket_id.in_(select(Assignment.ticket_id)), expired))
             .order_by(PendingMove.id).limit(BATCH))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=PendingMove, skip_locked=True)
    moves = list((await session.scalars(query)).all())
    for move in moves:
        with log_context(ticket_id=move.ticket_id):
            log.info("applying %s kept until the ticket was routed", move.trigger)
            await service.escalate(
                session, move.ticket_id,
                service.Move(move.trigger, move.reason,
                             EscalationKind(move.kind) if move.kind else None),
                executive=move.executive, sponsor_email=move.sponsor_email)
        await session.delete(move)
    return len(moves)


async def count_pending_moves(session: AsyncSession) -> None:
    """Refresh the gauges of kept moves: a move that stays is a ticket whose creation
    never came, which only the count and the age of the oldest show (``database_gauge``
    runs this)."""
    count, oldest = (await session.execute(
        select(func.count(), func.min(PendingMove.received_at)))).one()
    metrics.PENDING_MOVES.set(count)
    metrics.PENDING_OLDEST.set((utcnow() - oldest).total_seconds() if oldest else 0.0)


async def sweep_forever(runtime: Runtime) -> None:
    """The router's worker: sweep every ``SWEEP_SECONDS``, at once again after a full
    batch; a database outage is waited out like the consumer's."""
    hours = runtime.settings.inbox_retention_hours
    while True:
        try:
            async with runtime.sessionmaker() as session, session.begin():
                applied = await apply_pending(session, max_age_hours=hours)
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            log.warning("cannot apply pending moves (%s); will retry", exc)
            applied = 0
        if applied < BATCH:
            await asyncio.sleep(SWEEP_SECONDS)
