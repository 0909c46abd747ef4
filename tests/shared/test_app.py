"""The request middleware every service shares: request ids and HTTP metrics."""

from __future__ import annotations

from tests.shared.probe.app import SPEC, ProbeSettings
from tests.support import Env, running


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
