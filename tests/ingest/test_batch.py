"""The set-based path shared by the batch form and group commit: the same outcome as
one event at a time, also when the bulk insert meets rows it did not see."""

from __future__ import annotations

from sqlalchemy import select

from escalator.ingest import batch, customers
from escalator.ingest.inbound import CustomerRef, Inbound
from escalator.ingest.main import SPEC
from escalator.ingest.models import CustomerAccount, Ticket
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
