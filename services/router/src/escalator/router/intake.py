"""New tickets, a batch at a time: the first holder of each, with a fixed number of
statements per batch rather than per ticket.

One statement (``slots.lock``) locks every agent the tickets' first levels may pick and
their round-robin cursors (in id order), and reads which tickets are routed already and
the roster version; the paths are chosen on the in-memory roster first, and chosen again
on the reloaded one if that version is newer. Each decision is then the same
``service.assign`` as any other move, taken in memory on exact loads, one after another
so each sees the slots the ones before it took. ``Writes.flush`` writes the loads,
cursors, assignments, history and outbox rows: one statement on PostgreSQL, one per table
on SQLite.

A ticket routed meanwhile by another replica (another copy of its creation, under another
event id) makes the assignment insert fail on its primary key; the runner then applies
the batch event by event, and that copy finds the ticket routed and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router.catalog import Catalog, PathInfo, catalog, reload
from escalator.router.service import OPEN, Move, assign, choose_path, executive_level
from escalator.router.slots import Stale, View, cursor_key, lock
from escalator.router.writes import Draft, Writes
from escalator.shared.events import CloudEvent, TicketCreated, TicketSnapshot, utcnow
from escalator.shared.logs import log_context

log = logging.getLogger(__name__)


async def route_new_tickets(session: AsyncSession,
                            events: Sequence[CloudEvent[TicketCreated]]) -> None:
    """Give each new ticket its first holder; a ticket already routed is left as it is."""
    fresh: dict[str, CloudEvent[TicketCreated]] = {}
    for event in events:
        fresh.setdefault(event.data.ticket_id, event)
    known = await catalog(session)
    while True:
        plans = [(event, *choose_path(known, event.data)) for event in fresh.values()]
        try:
            here = await _lock_first_levels(session, known, list(fresh), [
                (path, executive_level(path) if event.data.executive else 0)
                for event, path, _ in plans if path is not None])
            break
        except Stale:
            known = await reload(session)
    writes = Writes()
    for event, path, rule in plans:
        with log_context(event_id=event.id, ticket_id=event.subject):
            if event.data.ticket_id in here.routed:
                log.info("ticket already routed; ticket.created ignored")
                continue
            if path is None:
                log.error("no default escalation path is configured; ticket left unrouted")
                continue
            draft = _draft(event.data, path, rule)
            matched = f"rule {rule}" if rule else "default path"
            why = f"{matched} chose path {path.id}"
            if draft.executive:
                why += ("; executive ticket (cancellation or legal threat) starts at the "
                        "executive level")
            writes.created.append(draft)
            await assign(session, known, draft, path, Move("ticket_created", why), writes,
                         check_version=False)
    await writes.flush(session)


async def _lock_first_levels(session: AsyncSession, known: Catalog, ticket_ids: list[str],
                             starts: list[tuple[PathInfo, int]]) -> View:
    """Lock every agent and cursor the tickets' starting levels may use, and find which
    tickets are routed already, at once."""
    agent_ids: set[str] = set()
    keys: set[str] = set()
    for path, index in {(path.id, index): (path, index) for path, index in starts}.values():
        agent_ids.update(a.id for a in path.members[index])
        if (key := cursor_key(path, index)) is not None:
            keys.add(key)
    return await lock(session, known, agent_ids, keys, tickets=ticket_ids)


def _draft(ticket: TicketSnapshot, path: PathInfo, rule: str | None) -> Draft:
    now = utcnow()
    sponsor = ticket.customer.executive_sponsor
    return Draft(
        ticket_id=ticket.ticket_id, path_id=path.id,
        level=executive_level(path) if ticket.executive else 0, agent_id=None,
        severity=ticket.severity.value, status=OPEN, rule=rule, executive=ticket.executive,
        language=ticket.language.lower(), category=(ticket.category or "").lower() or None,
        sponsor_email=sponsor.email.lower() if sponsor and ticket.executive else None,
        holders=[], repeats=0, created_at=now, updated_at=now,
    )
