"""``make chaos`` in small: the same faults and the same books, sized for CI.

PostgreSQL is not restarted here (the other tests share the cluster); ``make chaos``
does restart it, with 20,000 events and the five-minute consumer stop.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.chaos import SERVICES, Chaos, Plan, _topics

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def test_faults_lose_nothing_and_do_nothing_twice(
    tmp_path: Path, postgres_available: None
) -> None:
    plan = Plan(events=600, seconds=40, freeze_seconds=5, pause_seconds=10,
                restart_postgres=False)
    verdict = await Chaos(plan, tmp_path).run()
    assert verdict["failures"] == [], (verdict, (tmp_path / "services.log").read_text()[-5_000:])
    assert verdict["accepted"] == plan.events
    assert verdict["first_response_breaches"] > 0 and verdict["dead_letters"] > 0
    # every service that consumes (ingest too: it follows assignments) was checked
    assert verdict["kills_checked"] == sum(1 for name in SERVICES if _topics(name))
