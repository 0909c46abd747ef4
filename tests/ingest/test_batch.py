"""The set-based path shared by the batch form and group commit: the same outcome as
one event at a time, also when the bulk insert meets rows it did not see."""

from __future__ import annotations

from sqlalchemy import select

from escalator.ingest import batch, customers, service
from escalator.ingest.inbound import CustomerRef, Inbound
from escalator.ingest.main import SPEC
from escalator.ingest.models import (
    CustomerAccount,
    CustomerIdentity,
    ThreadKey,
    Ticket,
    TicketComment,
)
from escalator.ingest.service import Outcome
from escalator.shared.events import utcnow
from tests.ingest.helpers import ingest_settings
from tests.support import Env, running


def _inbound(external_id: str, email: str, description: str = "Payments fail.") -> Inbound:
    return Inbound(channel="api", external_id=external_id, subject="Payments",
                   description=description, mode="replace",
                   customer=CustomerRef(email=email, name="Someone"))


async def test_bulk_equals_one_by_one_and_redoes_a_lost_race(env: Env) -> None:
    async with running(SPEC, ingest_settings(env)) as svc:
        runtime = svc.runtime
        config = runtime.extras["config"]
        # An account another replica created for this sender, whose identities are not
        # committed yet: the bulk lookup cannot see it, so its INSERT collides.
        ref = CustomerRef(email="late@acme.example", name="Late")
        twin = customers.new_account(ref, customers.identity_keys(ref))
        async with runtime.sessionmaker() as session, session.begin():
            session.add(CustomerAccount(id=twin.id, name="Late (other replica)",
                                        email="late@acme.example", tier="premium",
                                        language=None, data={}, created_at=utcnow(),
                                        updated_at=utcnow()))
        events = [_inbound("r-1", "new@acme.example"), _inbound("r-2", "late@acme.example"),
                  _inbound("r-1", "new@acme.example", "Still failing."),
                  _inbound("r-3", "new@acme.example")]
        results = await batch.store_many(runtime.sessionmaker, list(enumerate(events)), config)
        outcomes = [results[i] for i in range(4)]
        assert all(isinstance(o, Outcome) for o in outcomes)
        assert [o.created for o in outcomes if isinstance(o, Outcome)] == [True, True, False,
                                                                            True]
        assert outcomes[0] == Outcome(outcomes[2].ticket_id, True)  # type: ignore[union-attr]
        async with runtime.sessionmaker() as session:
            rows = {t.external_id: t for t in await session.scalars(select(Ticket))}
            assert set(rows) == {"r-1", "r-2", "r-3"}
            assert rows["r-2"].customer_account_id == twin.id
            assert rows["r-2"].customer_tier == "premium"
            assert rows["r-1"].description == "Still failing."
            assert rows["r-1"].customer_account_id == rows["r-3"].customer_account_id


def _mail(own: str, *parents: str, sender: str = "ana@acme.example") -> Inbound:
    """An email as ``email_in.parse`` normalizes it: the thread's root is the ticket's
    external id, every Message-ID of the thread a reference."""
    root = parents[0] if parents else own
    return Inbound(channel="email", external_id=root, subject="Invoices", mode="reply",
                   description=f"Message {own}.", author=sender,
                   customer=CustomerRef(email=sender, name="Ana"),
                   thread_refs=list(dict.fromkeys([own, *parents])))


async def test_new_email_threads_are_created_in_bulk_and_replies_still_join_them(
    env: Env
) -> None:
    """New threads take the set-based path with their Message-IDs; a reply in the same
    call to one of them, or to a thread stored before, continues that ticket."""
    async with running(SPEC, ingest_settings(env)) as svc:
        runtime, config = svc.runtime, svc.runtime.extras["config"]
        [earlier] = (await batch.store_many(
            runtime.sessionmaker, [(0, _mail("<m0@x>"))], config)).values()
        events = [_mail("<m1@x>"), _mail("<m2@x>", "<m1@x>", sender="bo@acme.example"),
                  _mail("<m3@x>"), _mail("<m4@x>", "<m0@x>"), _mail("<m1@x>")]
        async with runtime.sessionmaker() as session, session.begin():
            fresh, slow = await batch._split(session, list(enumerate(events)))
        assert [i for i, _ in fresh] == [0, 2]  # new threads; the rest continue one
        results = await batch.store_many(runtime.sessionmaker, list(enumerate(events)), config)
        outcomes = [results[i] for i in range(len(events))]
        assert all(isinstance(o, Outcome) for o in outcomes)
        first, reply, other, late, again = outcomes
        assert isinstance(earlier, Outcome) and isinstance(first, Outcome)
        assert [o.created for o in outcomes if isinstance(o, Outcome)] == [
            True, False, True, False, False]
        assert reply == again == Outcome(first.ticket_id, False)
        assert late == Outcome(earlier.ticket_id, False)
        async with runtime.sessionmaker() as session:
            keys = {k.key: k.ticket_id for k in await session.scalars(select(ThreadKey))}
            comments = (await session.scalars(select(TicketComment.body).where(
                TicketComment.ticket_id == first.ticket_id))).all()
        assert keys == {"<m0@x>": earlier.ticket_id, "<m4@x>": earlier.ticket_id,
                        "<m1@x>": first.ticket_id, "<m2@x>": first.ticket_id,
                        "<m3@x>": other.ticket_id}  # type: ignore[union-attr]
        assert sorted(comments) == ["Message <m1@x>.", "Message <m2@x>."]


async def test_a_ticket_stored_in_bulk_has_every_column_the_careful_path_writes(
        env: Env) -> None:
    """The bulk path writes its rows as one array per column (PostgreSQL): each column,
    JSON and booleans included, must read back as the ORM path stores it."""
    async with running(SPEC, ingest_settings(env)) as svc:
        runtime = svc.runtime
        config = runtime.extras["config"]

        def chat(external_id: str, details: dict[str, object] | None) -> Inbound:
            return Inbound(channel="chat", external_id=external_id, subject="Orders stuck",
                           description="I will cancel my contract if this goes on.",
                           mode="reply", details=details,
                           customer=CustomerRef(email="vip@acme.example", name="Vi P"))

        transcript = {"transcript": [{"from": "bot", "text": "Let me pass you on."}],
                      "handoff": True}
        bulk = [chat("bulk-1", transcript), chat("bulk-2", None)]
        results = await batch.store_many(runtime.sessionmaker, list(enumerate(bulk)), config)
        assert all(isinstance(r, Outcome) and r.created for r in results.values())
        async with runtime.sessionmaker() as session, session.begin():
            await service.ingest(session, chat("one-1", transcript), config)
            await service.ingest(session, chat("one-2", None), config)
        skip = {"id", "external_id", "created_at", "updated_at"}
        async with runtime.sessionmaker() as session:
            rows = {t.external_id: {c: getattr(t, c) for c in Ticket.__table__.columns.keys()
                                    if c not in skip}
                    for t in await session.scalars(select(Ticket))}
        assert rows["bulk-1"] == rows["one-1"]
        assert rows["bulk-2"] == rows["one-2"]
        assert rows["bulk-1"]["details"] == transcript and rows["bulk-1"]["executive"] is True
        assert not rows["bulk-2"]["details"]


async def test_new_senders_stored_in_bulk_match_the_careful_path(env: Env) -> None:
    """New senders' accounts and identities go in as plain rows on the bulk path: each
    must read back as the careful (ORM) path stores it, and match the sender's next
    message."""
    async with running(SPEC, ingest_settings(env)) as svc:
        runtime = svc.runtime
        config = runtime.extras["config"]

        def call(external_id: str, who: str) -> Inbound:
            return Inbound(channel="phone", external_id=external_id, subject="Line down",
                           description="No dial tone since this morning.", mode="reply",
                           customer=CustomerRef(email=f"{who}@acme.example", name=who.title(),
                                                phone="+44 20 7946 0001" if who == "bo" else
                                                "+44 20 7946 0002"))

        bulk = [call("bulk-1", "bo"), call("bulk-2", "bo")]
        results = await batch.store_many(runtime.sessionmaker, list(enumerate(bulk)), config)
        assert [r.created for r in results.values() if isinstance(r, Outcome)] == [True, True]
        async with runtime.sessionmaker() as session, session.begin():
            await service.ingest(session, call("one-1", "al"), config)

        def shape(account: CustomerAccount) -> dict[str, object]:
            return {c: getattr(account, c) for c in CustomerAccount.__table__.columns.keys()
                    if c not in {"id", "name", "email", "created_at", "updated_at", "data"}}

        async with runtime.sessionmaker() as session:
            accounts = {a.email: a for a in await session.scalars(select(CustomerAccount))}
            keys = {(i.customer_id, i.key)
                    for i in await session.scalars(select(CustomerIdentity))}
            tickets = {t.external_id: t for t in await session.scalars(select(Ticket))}
        bo, al = accounts["bo@acme.example"], accounts["al@acme.example"]
        assert shape(bo) == shape(al) and bo.name == "Bo"
        assert bo.data == {"phones": ["+44 20 7946 0001"]}
        assert {k for owner, k in keys if owner == bo.id} == {
            "email:bo@acme.example", "phone:+442079460001"}
        assert {k.split(":")[0] for owner, k in keys if owner == al.id} == {"email", "phone"}
        assert tickets["bulk-1"].customer_account_id == tickets["bulk-2"].customer_account_id \
            == bo.id
        # The next message from the new sender, by phone only, finds the same account.
        again = Inbound(channel="phone", external_id="later", subject="Still down",
                        description="Still no dial tone.", mode="reply",
                        customer=CustomerRef(phone="+44 20 7946 0001"))
        later = await batch.store_many(runtime.sessionmaker, [(0, again)], config)
        async with runtime.sessionmaker() as session:
            ticket = await session.get(Ticket, later[0].ticket_id)  # type: ignore[union-attr]
        assert ticket is not None and ticket.customer_account_id == bo.id
