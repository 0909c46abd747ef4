"""The pending-review gauge: right by status, and read from the reviews still open."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import REGISTRY
from sqlalchemy import text

from escalator.postmortem.main import SPEC
from escalator.postmortem.metrics import PENDING, count_pending_reviews
from escalator.postmortem.models import Postmortem
from escalator.postmortem.settings import PostmortemSettings
from escalator.shared.db import make_engine, make_sessionmaker
from escalator.shared.migrations import upgrade
from tests.support import Env, explain


def _postmortem(n: int, status: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {"id": f"pm-{n}", "ticket_id": f"t-{n}", "status": status, "created_at": now,
            "closed_at": now, "subject": "s", "severity": "high", "channel": "api",
            "customer_name": "C", "customer_email": "c@x.example",
            "customer_tier": "standard", "summary": "x" * 500}


async def test_pending_reviews_are_counted_from_the_status_index(pg_env: Env) -> None:
    """Completed reviews pile up for good; the gauge counted every status (a scan of the
    whole table) to report two of them. With 20,000 completed and a few pending, it
    reads the status index for the pending ones only."""
    settings = pg_env.settings(PostmortemSettings)
    engine = make_engine(settings)
    try:
        await upgrade(engine, settings, SPEC.migrations)
        async with engine.begin() as conn:
            await conn.execute(Postmortem.__table__.insert(), [
                _postmortem(n, "completed") for n in range(20_000)])
            await conn.execute(Postmortem.__table__.insert(), [
                _postmortem(20_000 + n, status)
                for n, status in enumerate(["draft", "draft", "in_review"])])
            await conn.execute(text("ANALYZE postmortems"))
            plan = await explain(conn, PENDING)
        assert "ix_postmortems_status" in plan and "Seq Scan" not in plan, plan
        async with make_sessionmaker(engine)() as session:
            await count_pending_reviews(session)
        assert [REGISTRY.get_sample_value("escalator_postmortems_pending_review",
                                          {"status": s}) for s in ("draft", "in_review")] \
            == [2, 1]
    finally:
        await engine.dispose()
