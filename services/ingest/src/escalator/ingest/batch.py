"""The batch form's fast path: new conversations in a few statements instead of per event.

Per-event ingestion costs several round trips (lookups, a savepoint, inserts); for a
batch of 1,000 that dominates. Here the new conversations of a batch are resolved with
one query per kind (existing tickets, identities, accounts) and inserted together
(SQLAlchemy batches the INSERTs). Everything else (follow-ups, email threads,
monitoring resolves, repeats within the batch) goes through ``service.ingest`` one by
one. If the bulk insert meets a concurrent writer (unique violation), the whole fast
path is rolled back to its savepoint and redone one by one, so the outcome is the same.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.ingest import customers, service
from escalator.ingest.config import IngestConfig
from escalator.ingest.inbound import Inbound
from escalator.ingest.models import CustomerAccount, CustomerIdentity, Ticket
from escalator.ingest.service import Outcome
from escalator.shared.problems import Problem


async def ingest_many(session: AsyncSession, inbounds: list[tuple[int, Inbound]],
                      config: IngestConfig) -> dict[int, Outcome | Problem]:
    """The outcome, or the problem that refused it, per index of the batch."""
    fresh, slow = await _split(session, inbounds)
    results: dict[int, Outcome | Problem] = {}
    if fresh:
        try:
            async with session.begin_nested():
                results.update(await _bulk_create(session, fresh, config))
        except IntegrityError:
            results.clear()
            slow = sorted(fresh + slow, key=lambda pair: pair[0])
    for index, inbound in slow:
        try:
            async with session.begin_nested():
                results[index] = await service.ingest(session, inbound, config)
        except Problem as exc:
            results[index] = exc
    return results


async def _split(session: AsyncSession, inbounds: list[tuple[int, Inbound]]
                 ) -> tuple[list[tuple[int, Inbound]], list[tuple[int, Inbound]]]:
    if not inbounds:
        return [], []
    channel = inbounds[0][1].channel
    ids = list({i.external_id for _, i in inbounds})
    existing = set(await session.scalars(select(Ticket.external_id).where(
        Ticket.channel == channel, Ticket.external_id.in_(ids))))
    fresh, slow, seen = [], [], set()
    for index, inbound in inbounds:
        simple = (inbound.mode not in ("resolve", "acknowledge") and not inbound.thread_refs
                  and inbound.channel == channel)
        if simple and inbound.external_id not in existing and inbound.external_id not in seen:
            fresh.append((index, inbound))
            seen.add(inbound.external_id)
        else:
            slow.append((index, inbound))
    return fresh, slow


async def _bulk_create(session: AsyncSession, fresh: list[tuple[int, Inbound]],
                       config: IngestConfig) -> dict[int, Outcome]:
    refs = [inbound.customer for _, inbound in fresh]
    keys = {key for ref in refs for key in customers.identity_keys(ref)}
    owner = {row.key: row.customer_id for row in await session.scalars(
        select(CustomerIdentity).where(CustomerIdentity.key.in_(keys)))} if keys else {}
    wanted = set(owner.values()) | {r.account_id for r in refs if r.account_id}
    accounts = {a.id: a for a in await session.scalars(
        select(CustomerAccount).where(CustomerAccount.id.in_(wanted)))} if wanted else {}
    results: dict[int, Outcome] = {}
    built, identities = [], []
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
                session.add(account)
                identities += customers.identities_of(account.id, ref_keys)
                accounts[account.id] = account
            for key in ref_keys:
                owner.setdefault(key, account.id)
        customer = customers.customer_of(account, ref)
        ticket, decision = service.build_ticket(inbound, customer, account.id, config)
        built.append((index, inbound, ticket, decision))
    await session.flush()  # accounts before the identities that reference them
    session.add_all(identities)
    session.add_all([ticket for _, _, ticket, _ in built])
    await session.flush()
    for index, inbound, ticket, decision in built:
        service.announce_created(session, ticket, inbound, decision)
        results[index] = Outcome(ticket, True)
    return results
