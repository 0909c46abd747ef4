"""Taking agents' slots: the only place routing reads loads and writes them.

Before a decision looks at a level, its agents' rows are locked (``SELECT ... FOR
UPDATE``, in id order): their loads, availability and capacity are then exact until the
transaction ends, because no other replica can take or free those slots meanwhile. A
batch of new tickets locks every agent all its decisions may pick with one statement
(``lock``); the decisions then take and free slots in memory (``View``), and ``settle``
writes every changed load with one statement before the handler returns. Round-robin
cursors likewise: locked together (created at first use), advanced in memory, written by
``settle``. So replicas never overload an agent nor share a round-robin turn: whoever
locks second waits for the first one's commit and reads what it wrote.

Locks are taken in id order within a statement, so two replicas locking overlapping sets
queue instead of deadlocking. A transaction that locks more later (a second run of new
tickets in one batch, an escalation) can still meet another in the opposite order;
PostgreSQL then aborts one of them and the runner applies that batch again.

The roster version is read with the locks: a change committed since the in-memory
roster was loaded raises ``Stale`` while the decision has changed nothing yet, and the
decision is made again on the reloaded roster.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    Table,
    bindparam,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router.catalog import Catalog, PathInfo, config_version
from escalator.router.models import Agent, Assignment, RoundRobin
from escalator.router.roster import Ask, Pick, Slot, choose
from escalator.shared.db import among, arrays, conflict_insert, held, transaction_info

agents = cast(Table, Agent.__table__)
cursors = cast(Table, RoundRobin.__table__)
assignments = cast(Table, Assignment.__table__)
_VIEW = "escalator.router.view"


class Stale(Exception):
    """The in-memory roster is older than the database's: reload it and decide again."""


@dataclass
class Turn:
    """A level's round-robin cursor as this transaction locked it."""

    last_agent_id: str | None
    turns: int


@dataclass
class View:
    """The rows this transaction has locked, kept current by its own decisions, and the
    changes not written yet. Tied to one (sub)transaction: rolling a savepoint back
    releases the locks taken in it and undoes its writes, so a new one starts empty."""

    transaction: Any
    slots: dict[str, Slot] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)  #: load changes to write
    cursors: dict[str, Turn] = field(default_factory=dict)
    moved: set[str] = field(default_factory=set)  #: cursors to write
    levels: set[tuple[str, int]] = field(default_factory=set)  #: (path, level) locked
    routed: set[str] = field(default_factory=set)  #: tickets ``lock`` found assigned


def view(session: AsyncSession) -> View:
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    scoped = transaction_info(session)
    found: View | None = scoped.get(_VIEW)
    if found is None or found.transaction is not transaction:
        scoped[_VIEW] = found = View(transaction)
    return found


async def lock(session: AsyncSession, known: Catalog, agent_ids: Iterable[str],
               cursor_keys: Iterable[str] = (), *, tickets: Iterable[str] = (),
               check_version: bool = True) -> View:
    """Lock (once per transaction) the agents and round-robin cursors a decision may use,
    and note which of ``tickets`` are routed already (``View.routed``).

    All in one statement (``_reads``): agents, then cursors, each in id order, the routed
    tickets and the roster version, so a batch of new tickets reads everything it decides
    on in one round trip. Raises ``Stale`` when ``check_version`` and the roster changed
    since ``known``; the locks taken stay (they are this transaction's and the rows read
    are still exact)."""
    here = view(session)
    missing = sorted(set(agent_ids).difference(here.slots))
    keys = sorted(set(cursor_keys).difference(here.cursors))
    asked = sorted(set(tickets))
    if not (missing or keys or asked):
        return here
    rows = (await _run(session, _reads(session.get_bind().dialect.name),
                       {"ids": missing, "keys": keys, "ticket_id": asked})).all()
    version = None
    # Rows unpacked as tuples: a level's agents are hundreds of rows per batch, and a
    # Row's attribute access cost more than the Slot built from it.
    for kind, key, number, available, capacity, last in rows:
        if kind == _AGENT:
            here.slots[key] = Slot(number, available, capacity)
        elif kind == _CURSOR:
            here.cursors[key] = Turn(last, int(number))
        elif kind == _ROUTED:
            here.routed.add(key)
        else:
            version = number
    new = [key for key in keys if key not in here.cursors]
    if new:
        await _create_cursors(session, here, new)
    if check_version and version != known.version:
        raise Stale
    return here


_AGENT, _CURSOR, _ROUTED, _VERSION = range(4)


def _kind(kind: int) -> Any:
    return literal_column(str(kind), Integer())


@functools.cache
def _reads(dialect: str) -> Any:
    """``lock``'s statement, built once per dialect (``among`` differs). Which tickets
    are routed already is a probe per ticket on PostgreSQL (``held``): as a join, the plan
    made on an empty table scanned every assignment until the table was analysed."""
    locked = (select(agents.c.id, agents.c.open_tickets, agents.c.available,
                     agents.c.max_open_tickets)
              .where(among(agents.c.id, "ids", dialect))
              .order_by(agents.c.id).with_for_update(of=agents).cte("locked"))
    turns = (select(cursors.c.key, cursors.c.last_agent_id, cursors.c.turns)
             .where(among(cursors.c.key, "keys", dialect))
             .order_by(cursors.c.key).with_for_update().cte("turns"))
    routed = held(assignments.c.ticket_id, dialect=dialect).subquery("routed")
    text_null, int_null, bool_null = (null().cast(kind) for kind in (String(), Integer(),
                                                                     Boolean()))
    return union_all(
        select(_kind(_AGENT), locked.c.id, locked.c.open_tickets, locked.c.available,
               locked.c.max_open_tickets, text_null),
        select(_kind(_CURSOR), turns.c.key, turns.c.turns, bool_null, int_null,
               turns.c.last_agent_id),
        select(_kind(_ROUTED), routed.c.ticket_id, int_null, bool_null, int_null, text_null),
        select(_kind(_VERSION), text_null, config_version.c.version, bool_null, int_null,
               text_null),
    )


async def _create_cursors(session: AsyncSession, here: View, keys: list[str]) -> None:
    """A level's first round-robin turn: its cursor row is created, then locked.

    Created apart from reading: two replicas creating one at once cannot both insert, and
    the second then waits for the first one's lock."""
    insert = conflict_insert(session.get_bind().dialect.name)
    await _run(session, insert(cursors).on_conflict_do_nothing(),
               [{"key": k, "last_agent_id": None, "turns": 0} for k in keys])
    query = (select(cursors.c.key, cursors.c.last_agent_id, cursors.c.turns)
             .where(among(cursors.c.key, "keys", session))
             .order_by(cursors.c.key).with_for_update())
    rows = (await _run(session, query, {"keys": keys})).all()
    here.cursors.update({key: Turn(last, int(turns)) for key, last, turns in rows})


async def pick(session: AsyncSession, known: Catalog, path: PathInfo, index: int, ask: Ask,
               now: datetime, *, release: str | None, check_version: bool = True) -> Pick:
    """Choose an agent for level ``index`` of ``path`` and take its slot (in this
    transaction's view: ``settle`` writes it).

    ``release`` is the current holder, whose slot is given back first. Raises ``Stale``
    (only when ``check_version``) before changing anything."""
    level, members = path.levels[index], path.members[index]
    key = cursor_key(path, index)
    here = view(session)
    if (path.id, index) not in here.levels or (release and release not in here.slots):
        ids = [a.id for a in members] + ([release] if release else [])
        await lock(session, known, ids, [key] if key else [], check_version=check_version)
        here.levels.add((path.id, index))
    if release is not None:
        step(here, release, -1)
    cursor = here.cursors[key] if key else None
    chosen = choose(level, members, here.slots,
                    (cursor.last_agent_id, cursor.turns) if cursor else (None, 0), ask, now)
    if chosen.agent is not None:
        step(here, chosen.agent.id, 1)
        if cursor is not None and key is not None and chosen.by_turn:
            cursor.last_agent_id, cursor.turns = chosen.agent.id, cursor.turns + 1
            here.moved.add(key)
    return chosen


def cursor_key(path: PathInfo, index: int) -> str | None:
    """The level's round-robin cursor, when it has one."""
    return f"{path.id}:{index}" if path.levels[index].get("strategy") == "round_robin" else None


def step(here: View, agent_id: str, change: int) -> None:
    """Take (+1) or free (-1) a slot of a locked agent; a load never goes below zero."""
    slot = here.slots.get(agent_id)
    if slot is None:  # removed from the roster since it took the ticket: nothing to free
        return
    change = max(change, -slot.load)
    slot.load += change
    here.steps[agent_id] = here.steps.get(agent_id, 0) + change


_STEP = (update(agents).where(agents.c.id == bindparam("agent"))
         .values(open_tickets=agents.c.open_tickets + bindparam("step")))
_MOVE = (update(cursors).where(cursors.c.key == bindparam("cursor"))
         .values(last_agent_id=bindparam("last"), turns=bindparam("count")))


_steps = arrays(("step_agent", agents.c.id.type), ("step", Integer())).alias("steps")
_turns = arrays(("turn_key", cursors.c.key.type), ("turn_last", cursors.c.last_agent_id.type),
                 ("turn_count", Integer())).alias("turns")
#: PostgreSQL: ``settle``'s two writes as CTEs, to run in the statement that writes the
#: rest of a decision (``writes.flush``), with the parameters from ``unsettled``.
SETTLE_CTES = (
    update(agents).where(agents.c.id == _steps.c.step_agent)
    .values(open_tickets=agents.c.open_tickets + _steps.c.step).cte("loads"),
    update(cursors).where(cursors.c.key == _turns.c.turn_key)
    .values(last_agent_id=_turns.c.turn_last, turns=_turns.c.turn_count).cte("cursors"),
)


def unsettled(session: AsyncSession) -> dict[str, list[Any]]:
    """``SETTLE_CTES``' parameters: the view's load and cursor changes, as arrays (then
    forgotten, as by ``settle``)."""
    here = view(session)
    steps = sorted((a, n) for a, n in here.steps.items() if n)
    moved = sorted(here.moved)
    here.steps.clear()
    here.moved.clear()
    return {
        "step_agent": [a for a, _ in steps], "step": [n for _, n in steps],
        "turn_key": moved, "turn_last": [here.cursors[k].last_agent_id for k in moved],
        "turn_count": [here.cursors[k].turns for k in moved],
    }


async def settle(session: AsyncSession) -> None:
    """Write the view's load and cursor changes: one statement each, all rows at once
    (on PostgreSQL ``writes.flush`` runs them as ``SETTLE_CTES`` instead).

    Loads are written as increments, so a change made directly in the same transaction
    (``note_load``) adds up with them."""
    changes = unsettled(session)
    if changes["step_agent"]:
        await _run(session, _STEP, [{"agent": a, "step": n} for a, n in
                                    zip(changes["step_agent"], changes["step"], strict=True)])
    if changes["turn_key"]:
        await _run(session, _MOVE, [
            {"cursor": k, "last": last, "count": count} for k, last, count in
            zip(changes["turn_key"], changes["turn_last"], changes["turn_count"], strict=True)])


def note_load(session: AsyncSession, agent_id: str, change: int) -> None:
    """Keep this transaction's view in step with a load change written elsewhere in it."""
    slot = view(session).slots.get(agent_id)
    if slot is not None:
        slot.load = max(slot.load + change, 0)


async def _run(session: AsyncSession, statement: Any, params: Any = None) -> Any:
    """Execute without autoflush: these statements read and write only agents and
    cursors, which the unit of work never holds changes to."""
    with session.no_autoflush:
        return await session.execute(statement, params)
