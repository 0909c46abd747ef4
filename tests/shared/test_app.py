"""The request middleware every service shares: request ids and HTTP metrics; and what
every service reports of its process: garbage collection and event loop lag."""

from __future__ import annotations

import asyncio
import gc
import re
import time

from tests.shared.probe.app import SPEC, ProbeSettings
from tests.support import Env, running, wait_until


async def test_request_id_is_echoed_carried_into_problems_and_requests_are_counted(
    pg_env: Env,
) -> None:
    async with running(SPEC, pg_env.settings(ProbeSettings)) as svc:
        given = await svc.client.get("/healthz", headers={"X-Request-ID": "req-from-lb"})
        assert given.headers["x-request-id"] == "req-from-lb"

        missing = await svc.client.get("/v1/nothing-here")
        assert missing.status_code == 404
        made_up = missing.headers["x-request-id"]
        assert len(made_up) == 32 and missing.json()["request_id"] == made_up

        metrics = (await svc.client.get("/metrics")).text
        assert 'escalator_http_requests_total{method="GET",route="/healthz",status="200"}' \
            in metrics
        assert 'route="unmatched",status="404"' in metrics


def _sample(metrics: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_collections_and_a_held_event_loop_show_in_the_metrics(pg_env: Env) -> None:
    """A full collection is counted and timed under its generation; a loop held for 0.6 s
    (the test shares the service's loop) shows as a wake-up more than 0.25 s late."""
    async with running(SPEC, pg_env.settings(ProbeSettings)) as svc:
        late = 'escalator_event_loop_lag_seconds_bucket{le="%s"}'
        full = 'escalator_gc_cpu_seconds_count{generation="2"}'

        async def scrape() -> str:
            return (await svc.client.get("/metrics")).text

        async def watched() -> bool:
            return _sample(await scrape(), "escalator_event_loop_lag_seconds_count") > 0

        await wait_until(watched, message="no wake-up observed")  # watched from start-up
        before = await scrape()
        gc.collect()
        time.sleep(0.6)  # noqa: ASYNC251 - holds the loop on purpose, as a blocking call would
        await asyncio.sleep(0.3)
        after = await scrape()
        assert _sample(after, full) >= _sample(before, full) + 1
        assert _sample(after, 'escalator_gc_cpu_seconds_sum{generation="2"}') > \
            _sample(before, 'escalator_gc_cpu_seconds_sum{generation="2"}')
        held = (_sample(after, late % "+Inf") - _sample(after, late % "0.25")) - \
            (_sample(before, late % "+Inf") - _sample(before, late % "0.25"))
        assert held >= 1
