"""Taking an agent's slot: the only place routing reads loads and writes them.

A decision is usually one statement. The loads of a level's agents are read once per
transaction (``observe``, without locks) and kept in a per-transaction ``View`` that the
decisions of the same batch update with their own takes. The chosen agent's slot is then
taken by one conditional ``UPDATE ... RETURNING``: still available, still under capacity,
the roster still at the version the choice was made with, and (for a new ticket) not
routed yet. That update waits for a competing replica's transaction and re-checks its
conditions on the committed row, so replicas never overload an agent; when it takes
nothing, the decision reads the level afresh (``Stale`` if the roster changed, nothing if
the ticket was routed meanwhile) and chooses again.

Round-robin cursors are locked (``FOR UPDATE``) the first time a transaction uses them
and then advanced in memory; the unit of work writes them at commit. Two replicas thus
take turns on one level one transaction after the other and never share a turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Result, Table, bindparam, exists, false, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.router.catalog import AgentInfo, Catalog, PathInfo, config_version
from escalator.router.models import Agent, Assignment, RoundRobin
from escalator.router.roster import Ask, Pick, choose

agents = cast(Table, Agent.__table__)
cursors = cast(Table, RoundRobin.__table__)
assignments = cast(Table, Assignment.__table__)
#: Fresh looks at one level before giving up: each one means another replica committed.
MAX_ATTEMPTS = 20
_VIEW = "escalator.router.view"


class Stale(Exception):
    """The in-memory roster is older than the database's: reload it and decide again."""


@dataclass
class View:
    """What this transaction knows of loads and cursors: read once, then kept current by
    its own writes. Tied to one (sub)transaction: a savepoint rolled back since would
    have undone some of those writes, so a new one starts empty."""

    transaction: Any
    loads: dict[str, int] = field(default_factory=dict)
    levels: set[tuple[str, int]] = field(default_factory=set)  #: (path, level) read here
    cursors: dict[str, RoundRobin] = field(default_factory=dict)


def view(session: AsyncSession) -> View:
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    found: View | None = session.info.get(_VIEW)
    if found is None or found.transaction is not transaction:
        session.info[_VIEW] = found = View(transaction)
    return found


async def _run(session: AsyncSession, statement: Any) -> Result[Any]:
    """Execute without autoflush, so the batch's assignments, history and outbox rows are
    written together when it commits instead of before every statement. Safe because
    these statements read no pending row: loads are written here at once, cursors are
    read before their first change, and ``service`` tracks unflushed new assignments."""
    with session.no_autoflush:
        return await session.execute(statement)


@dataclass(frozen=True)
class Seen:
    version: int
    routed: bool


async def observe(session: AsyncSession, members: Sequence[AgentInfo],
                  ticket_id: str | None) -> Seen:
    """One read: the config version, whether ``ticket_id`` is routed, and the loads."""
    routed = (exists().where(assignments.c.ticket_id == ticket_id) if ticket_id
              else false())
    query = (select(config_version.c.version, routed.label("routed"), agents.c.id,
                    agents.c.open_tickets)
             .select_from(config_version.outerjoin(
                 agents, agents.c.id.in_([a.id for a in members]))))
    rows = (await _run(session, query)).all()
    view(session).loads.update({r.id: int(r.open_tickets) for r in rows if r.id is not None})
    return Seen(int(rows[0].version), bool(rows[0].routed))


async def pick(session: AsyncSession, known: Catalog, path: PathInfo, index: int, ask: Ask,
               now: datetime, *, release: str | None, new_ticket: str | None = None,
               check_version: bool = True) -> Pick | None:
    """Choose an agent for level ``index`` of ``path`` and take its slot.

    ``release`` is the current holder, whose slot is given back first. Returns None when
    ``new_ticket`` turns out to be routed already. Raises ``Stale`` when ``known`` is
    older than the database, only while nothing is written (and ``check_version``)."""
    level, members = path.levels[index], path.members[index]
    key = f"{path.id}:{index}" if level.get("strategy") == "round_robin" else None
    seen_here = view(session)
    fresh = (path.id, index) not in seen_here.levels or release is not None
    version, restartable = known.version, check_version
    for _ in range(MAX_ATTEMPTS):
        if fresh:
            seen = await observe(session, members, new_ticket)
            seen_here.levels.add((path.id, index))
            if seen.version != version:
                if restartable:
                    raise Stale
                version = seen.version  # this decision began before the change: finish it
            if seen.routed:
                return None
            if release is not None:
                await _release(session, release)
                release, restartable = None, False
        cursor = await _cursor(session, key) if key else None
        chosen = choose(level, members, seen_here.loads,
                        (cursor.last_agent_id, cursor.turns) if cursor else (None, 0), ask, now)
        if chosen.agent is None:
            if fresh:
                return chosen
            fresh = True  # nobody, by this transaction's earlier look: look again
            continue
        load = await take(session, chosen.agent.id, version, new_ticket)
        if load is not None:
            seen_here.loads[chosen.agent.id] = load
            if cursor is not None and chosen.by_turn:
                cursor.last_agent_id, cursor.turns = chosen.agent.id, cursor.turns + 1
            return chosen
        fresh = True
    raise RuntimeError(f"no slot taken at level {index} of path {path.id} after "
                       f"{MAX_ATTEMPTS} attempts: the roster keeps changing underneath")


def _take(*, new_ticket: bool) -> Any:
    """Built once: the hot statement of every decision skips SQL construction."""
    statement = (update(agents)
                 .where(agents.c.id == bindparam("agent"), agents.c.available,
                        agents.c.open_tickets < agents.c.max_open_tickets,
                        select(config_version.c.version).scalar_subquery()
                        == bindparam("version"))
                 .values(open_tickets=agents.c.open_tickets + 1)
                 .returning(agents.c.open_tickets))
    if new_ticket:
        statement = statement.where(
            ~exists().where(assignments.c.ticket_id == bindparam("ticket")))
    return statement


_TAKE, _TAKE_NEW = _take(new_ticket=False), _take(new_ticket=True)


async def take(session: AsyncSession, agent_id: str, version: int,
               new_ticket: str | None) -> int | None:
    """One more open ticket for the agent, only if it is still available and under
    capacity, the roster still at ``version``, and ``new_ticket`` not routed yet.
    Returns the agent's new load, or None when any of that no longer holds."""
    params = {"agent": agent_id, "version": version}
    if new_ticket is not None:
        params["ticket"] = new_ticket
    with session.no_autoflush:
        load = (await session.execute(_TAKE if new_ticket is None else _TAKE_NEW,
                                      params)).scalar()
    return None if load is None else int(load)


async def _release(session: AsyncSession, agent_id: str) -> None:
    await _run(session, update(agents).where(agents.c.id == agent_id, agents.c.open_tickets > 0)
               .values(open_tickets=agents.c.open_tickets - 1))
    note_load(session, agent_id, -1)


def note_load(session: AsyncSession, agent_id: str, step: int) -> None:
    """Keep this transaction's view in step with a load change made elsewhere in it."""
    loads = view(session).loads
    if agent_id in loads:
        loads[agent_id] = max(loads[agent_id] + step, 0)


async def _cursor(session: AsyncSession, key: str) -> RoundRobin:
    """The level's round-robin cursor, locked for the rest of the transaction (created at
    first use: inserted apart, so two replicas creating it at once cannot both insert)."""
    cursors_here = view(session).cursors
    if key in cursors_here:
        return cursors_here[key]
    with session.no_autoflush:
        cursor = await session.get(RoundRobin, key, with_for_update=True,
                                   populate_existing=True)
        if cursor is None:
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            await session.execute(dialect.insert(cursors)
                                  .values(key=key, last_agent_id=None, turns=0)
                                  .on_conflict_do_nothing())
            cursor = await session.get(RoundRobin, key, with_for_update=True,
                                       populate_existing=True)
    assert cursor is not None
    cursors_here[key] = cursor
    return cursor
