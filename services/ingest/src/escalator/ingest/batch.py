"""Many inbound events in one transaction: the batch form and group commit share this.

Per-event ingestion costs several statements (lookups, a savepoint, inserts), and each
statement costs far more in the driver and ORM than in the database; for many events
that dominates. Here the new conversations among them (new email threads included)
are resolved with one query per kind (existing tickets and thread ids; accounts with
their identities) and inserted together (one multi-row INSERT per table). Everything
else (follow-ups, replies in a known thread, monitoring states, repeats of a
conversation already in the same call) goes through ``service.ingest`` one by one, each
in its own savepoint so a refused event leaves the others stored.

The result equals applying the events one at a time in their order: an event is taken
on the fast path only if no earlier event of the call concerns the same conversation,
and the fast path only creates tickets nobody else touches. If the bulk insert meets a
concurrent writer (a unique violation: another replica stored the same conversation or
sender in the meantime), the transaction is rolled back and redone one event at a
time, so the outcome is the same; that race is rare, so the bulk insert runs without a
savepoint of its own.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from escalator.ingest import customers, service
from escalator.ingest.config import IngestConfig
from escalator.ingest.inbound import Inbound
from escalator.ingest.models import Base, CustomerAccount, CustomerIdentity, ThreadKey, Ticket
from escalator.ingest.service import Outcome
from escalator.shared.db import held, unnested
from escalator.shared.events import CloudEvent, Customer
from escalator.shared.outbox import publish_many
from escalator.shared.problems import Problem

Indexed = list[tuple[int, Inbound]]
Results = dict[int, Outcome | Problem]
_TICKETS = Base.metadata.tables[Ticket.__tablename__]
_THREADS = Base.metadata.tables[ThreadKey.__tablename__]
_CUSTOMERS = Base.metadata.tables[CustomerAccount.__tablename__]
_IDENTITIES = Base.metadata.tables[CustomerIdentity.__tablename__]


def _values(obj: Any, table: Any) -> dict[str, Any]:
    """A transient ORM object's row, for a Core insert."""
    return {column.key: getattr(obj, column.key) for column in table.columns}


async def store_many(sessionmaker: async_sessionmaker[AsyncSession], inbounds: Indexed,
                     config: IngestConfig) -> Results:
    """Ingest ``inbounds`` and commit: the outcome, or the problem that refused it, per
    index. Any other error (the database, a race lost twice) propagates, and then
    nothing of the call was stored."""
    # A lone event needs no savepoint: if it is refused, nothing else is rolled back.
    isolate = len(inbounds) > 1
    try:
        try:
            async with sessionmaker() as session, session.begin():
                return await ingest_many(session, inbounds, config, isolate=isolate)
        except IntegrityError:
            async with sessionmaker() as session, session.begin():
                return await ingest_many(session, inbounds, config, bulk=False,
                                         isolate=isolate)
    except Problem as exc:
        return {inbounds[0][0]: exc}


async def ingest_many(session: AsyncSession, inbounds: Indexed, config: IngestConfig, *,
                      bulk: bool = True, isolate: bool = True) -> Results:
    """As ``store_many`` within the caller's transaction, which an error leaves unusable.

    ``isolate=False`` (one event only): a refusal is raised instead of rolled back to a
    savepoint, so the caller must roll back.
    """
    fresh, slow = await _split(session, inbounds) if bulk else ([], inbounds)
    results: Results = {}
    if fresh:
        results.update(await _bulk_create(session, fresh, config))
    for index, inbound in slow:
        if not isolate:
            results[index] = await service.ingest(session, inbound, config)
            continue
        try:
            async with session.begin_nested():
                results[index] = await service.ingest(session, inbound, config)
        except Problem as exc:
            results[index] = exc
    return results


async def _split(session: AsyncSession, inbounds: Indexed) -> tuple[Indexed, Indexed]:
    """(events that open a ticket for a conversation nobody has seen, all the others).

    An event's conversation is known by its external id and, for email, by every
    Message-ID of its thread (``thread_refs``), as ``service.find_conversation`` looks it
    up: the event is new when none of these names a ticket (one query each for the call)
    and no earlier event of the call shares one with it."""
    if not inbounds:
        return [], []
    by_channel: dict[str, set[str]] = defaultdict(set)
    refs: dict[str, set[str]] = defaultdict(set)
    for _, inbound in inbounds:
        by_channel[inbound.channel].add(inbound.external_id)
        refs[inbound.channel].update(inbound.thread_refs)
    known = await _named(session, Ticket.channel, Ticket.external_id, by_channel)
    known |= await _named(session, ThreadKey.channel, ThreadKey.key, refs)
    fresh, slow = [], []
    seen: set[tuple[str, str]] = set()
    for index, inbound in inbounds:
        names = {(inbound.channel, inbound.external_id),
                 *((inbound.channel, ref) for ref in inbound.thread_refs)}
        if (inbound.mode not in ("resolve", "acknowledge") and names.isdisjoint(known)
                and names.isdisjoint(seen)):
            fresh.append((index, inbound))
        else:
            slow.append((index, inbound))
        seen |= names
    return fresh, slow


async def _named(session: AsyncSession, channel_column: Any, name_column: Any,
                 names: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Which (channel, name) pairs of ``names`` the table holds, in one query.

    The pairs are two arrays, each looked up by an index probe on PostgreSQL
    (``shared.db.held``): an ``IN`` list of a thousand bound values is planned as a scan of
    the whole table (11 ms at 41,000 tickets, growing with it), and a join against the
    arrays as one too while the table has no statistics. (SQLite may answer pairs that
    were not asked; they are in the table, and only asked ones are looked for.)"""
    pairs = [(channel, name) for channel, values in names.items() for name in sorted(values)]
    if not pairs:
        return set()
    rows = await session.execute(
        _named_query(channel_column, name_column, session.get_bind().dialect.name),
        {channel_column.name: [channel for channel, _ in pairs],
         name_column.name: [name for _, name in pairs]})
    return {(channel, name) for channel, name in rows}


@functools.cache
def _named_query(channel_column: Any, name_column: Any, dialect: str) -> Any:
    """``_named``'s query, built once: building it and its cache key anew cost about as
    much CPU as a round trip."""
    return held(channel_column, name_column, dialect=dialect)


@functools.cache
def _insert_arrays(columns: tuple[str, ...]) -> Any:
    """The new tickets as one array per column (PostgreSQL): one statement whatever their
    number, where executemany bound and sent each row on its own and PostgreSQL ran an
    INSERT per ticket."""
    return insert(_TICKETS).from_select(columns, unnested(_TICKETS, columns))


async def _bulk_create(session: AsyncSession, fresh: Indexed,
                       config: IngestConfig) -> dict[int, Outcome]:
    refs = [inbound.customer for _, inbound in fresh]
    keys = {key for ref in refs for key in customers.identity_keys(ref)}
    ids = {ref.account_id for ref in refs if ref.account_id}
    accounts, owner = await customers.find(session, keys, ids)
    new_accounts: list[CustomerAccount] = []
    identities: list[CustomerIdentity] = []
    # Many events of one call come from the same few senders: one Customer each.
    known: dict[tuple[str | None, ...], tuple[Customer, dict[str, Any]]] = {}
    built = []
    for index, inbound in fresh:
        ref = inbound.customer
        ref_keys = customers.identity_keys(ref)
        account = accounts.get(ref.account_id or "") or next(
            (accounts[owner[k]] for k in ref_keys if k in owner and owner[k] in accounts), None)
        if account is None:
            account = customers.new_account(ref, ref_keys)
            if account.id in accounts:
                account = accounts[account.id]
            else:
                new_accounts.append(account)
                identities += customers.identities_of(account.id, ref_keys)
                accounts[account.id] = account
            for key in ref_keys:
                owner.setdefault(key, account.id)
        sender = (account.id, ref.email, ref.name, ref.tier, ref.phone, ref.language)
        if sender not in known:
            customer = customers.customer_of(account, ref)
            known[sender] = customer, customer.model_dump(mode="json")
        customer, customer_data = known[sender]
        row, decision = service.new_ticket(inbound, customer, account.id, config,
                                           customer_data=customer_data)
        built.append((index, inbound, row, decision, customer))
    if new_accounts:
        # Core inserts of plain rows (accounts before the identities that reference
        # them): the ORM's unit of work cost more per new sender than the ticket did.
        await session.execute(insert(_CUSTOMERS), [_values(a, _CUSTOMERS) for a in new_accounts])
        await session.execute(insert(_IDENTITIES), [_values(i, _IDENTITIES) for i in identities])
    # Core INSERT of plain rows: no ORM object per ticket.
    rows = [row for _, _, row, _, _ in built]
    if session.get_bind().dialect.name == "postgresql":
        columns = tuple(rows[0])  # every row of ``service.new_ticket`` has the same keys
        await session.execute(_insert_arrays(columns),
                              {name: [row[name] for row in rows] for name in columns})
    else:
        await session.execute(insert(_TICKETS), rows)
    # Every id of a new email thread names its ticket, as ``service._create`` stores them.
    threads = [{"channel": inbound.channel, "key": ref, "ticket_id": row["id"]}
               for _, inbound, row, _, _ in built
               for ref in dict.fromkeys(ref[:500] for ref in inbound.thread_refs)]
    if threads:
        await session.execute(insert(_THREADS), threads)
    results: dict[int, Outcome] = {}
    events: list[CloudEvent[Any]] = []
    for index, inbound, row, decision, customer in built:
        events += service.announce_created(session, row, inbound, decision, customer)
        results[index] = Outcome(row["id"], True)
    await publish_many(session, events)
    return results
