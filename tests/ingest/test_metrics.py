"""The open-tickets gauge: right by severity, and read from the open tickets only."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import REGISTRY
from sqlalchemy import text

from escalator.ingest.main import SPEC
from escalator.ingest.metrics import OPEN, count_open_tickets
from escalator.ingest.models import Ticket
from escalator.shared.db import make_engine, make_sessionmaker
from escalator.shared.migrations import upgrade
from tests.ingest.helpers import ingest_settings
from tests.support import Env, explain


def _ticket(n: int, state: str, severity: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {"id": f"t-{n}", "channel": "api", "external_id": str(n), "subject": "s",
            "description": "d" * 500, "severity": severity, "status": "open", "state": state,
            "customer_email": "c@x.example", "customer_name": "C", "customer_tier": "standard",
            "created_at": now, "updated_at": now}


async def test_open_tickets_are_counted_through_their_own_index(pg_env: Env) -> None:
    """Closed tickets pile up for good; the gauge, refreshed every 15 s, read all of them
    (a sequential scan of the whole table, descriptions included). With 20,000 closed
    tickets and a few open, the count reads the partial index of open tickets."""
    settings = ingest_settings(pg_env)
    engine = make_engine(settings)
    try:
        await upgrade(engine, settings, SPEC.migrations)
        async with engine.begin() as conn:
            await conn.execute(Ticket.__table__.insert(), [
                _ticket(n, "closed" if n % 2 else "resolved", "low") for n in range(20_000)])
            await conn.execute(Ticket.__table__.insert(), [
                _ticket(20_000 + n, state, severity) for n, (state, severity) in enumerate(
                    [("new", "high"), ("assigned", "high"), ("acknowledged", "critical"),
                     ("waiting_on_customer", "low")])])
            await conn.execute(text("ANALYZE tickets"))
            plan = await explain(conn, OPEN)
        assert "ix_tickets_open_severity" in plan and "Seq Scan" not in plan, plan
        async with make_sessionmaker(engine)() as session:
            await count_open_tickets(session)
        counts = {severity: REGISTRY.get_sample_value("escalator_open_tickets",
                                                      {"severity": severity})
                  for severity in ("low", "medium", "high", "critical")}
        assert counts == {"low": 1, "medium": 0, "high": 2, "critical": 1}
    finally:
        await engine.dispose()
