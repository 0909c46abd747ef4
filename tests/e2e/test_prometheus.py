"""The real Prometheus server scrapes the five running services with the project's rules."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import System
from tests.support import free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
KEY_SERIES = [
    "escalator_http_requests_total",
    "escalator_events_produced_total",
    "escalator_events_consumed_total",
    "escalator_outbox_backlog_events",
    "escalator_consumer_lag_messages",
    "escalator_tickets_created_total",
    "escalator_assignments_total",
]


async def test_prometheus_scrapes_every_service(system: System, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: `make test` installs it (scripts/ensure-tools.sh)")
    production = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = [job for job in production["scrape_configs"] if job["job_name"] in system.ports]
    assert len(jobs) == 5
    for job in jobs:  # same jobs and labels as production, pointed at this run's ports
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{system.ports[job['job_name']]}"]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "deploy" / "prometheus" / "rules" / "escalator.yml")],
        "scrape_configs": jobs,
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 - starts at once; never waited on here
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        created = await system.clients["ingest"].post("/v1/channels/api/events", json={
            "external_id": "prom-1", "subject": "Metrics check", "description": "d",
            "severity": "low", "customer": {"email": "a@b.example", "name": "A"}})
        assert created.status_code == 202
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as prom:

            async def api(path: str, **params: str) -> Any:
                """The API's ``data``, or None while Prometheus is still starting."""
                try:
                    response = await prom.get(path, params=params)
                except httpx.HTTPError:
                    return None
                return response.json()["data"] if response.status_code == 200 else None

            async def targets_up() -> bool:
                data = await api("/api/v1/targets")
                active = data["activeTargets"] if data else []
                return len(active) == 5 and all(t["health"] == "up" for t in active)

            await wait_until(targets_up, timeout=60, interval=0.5,
                             message="not every service target is up")

            async def series(name: str) -> list[Any]:
                data = await api("/api/v1/query", query=name)
                return list(data["result"]) if data else []

            for name in KEY_SERIES:
                await wait_until(lambda n=name: series(n), timeout=60, interval=0.5,  # type: ignore[misc]
                                 message=f"{name} never appeared")
            rules = (await api("/api/v1/rules"))["groups"]
            assert {g["name"] for g in rules} == {"escalator.recording", "escalator.alerts"}
            assert all(r["health"] == "ok" for g in rules for r in g["rules"])
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
