"""Property-based fuzzing of every service with schemathesis, from its own OpenAPI.

Each service runs for real (PostgreSQL, the broker) and schemathesis sends it generated
requests, valid and invalid ones, with a key that holds every scope. No response may be
a 5xx, and every response must match the schema the OpenAPI promises for it, problem
details included. PostgreSQL is the backend because it is the stricter one (NUL bytes in
text, integer ranges), so what passes here passes on SQLite too.

The example count is small and the seed fixed so the run is bounded and repeatable; a
failure prints schemathesis's own reproduction (a curl command) in the test output. The
coverage phase sends each field's edges (longest strings, other types, formats with
offsets): it found what random examples had not (a 255-character PagerDuty dedup key
and a shift time of ``00:00:00Z``, each a 500). One worker: with two, the coverage
phase's hypothesis lambdas met CPython 3.11's non-thread-safe ``ast.parse`` now and then
("AST constructor recursion depth mismatch"), an error of the tool, not of a service.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from pathlib import Path

import pytest

from escalator.shared.app import ServiceSpec
from escalator.shared.settings import ServiceSettings
from tests.support import API_KEY, Env, running

EXAMPLES = int(os.environ.get("ESCALATOR_FUZZ_EXAMPLES", 20))
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


SERVICES = {"ingest": "IngestSettings", "router": "RouterSettings",
            "sla_timer": "SlaTimerSettings", "notifier": "NotifierSettings",
            "postmortem": "PostmortemSettings"}


def service(package: str) -> tuple[ServiceSpec, type[ServiceSettings]]:
    main = importlib.import_module(f"escalator.{package}.main")
    settings = importlib.import_module(f"escalator.{package}.settings")
    return main.SPEC, getattr(settings, SERVICES[package])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("package", list(SERVICES))
async def test_fuzzed_requests_get_no_5xx_and_match_the_openapi(
    package: str, pg_env: Env, tmp_path: Path
) -> None:
    spec, settings_cls = service(package)
    # Configured as in production: a 503 for a feature left unconfigured is not a bug.
    overrides = {"survey_secret": "fuzz-survey-secret"} if package == "postmortem" else {}
    async with running(spec, pg_env.settings(settings_cls, **overrides)) as svc:
        st = Path(sys.executable).parent / "st"
        process = await asyncio.create_subprocess_exec(
            str(st), "run", f"{svc.base_url}/openapi.json", "--url", svc.base_url,
            "--header", f"Authorization: Bearer {API_KEY}",
            "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", "20261123",
            "--phases", "examples,coverage,fuzzing", "--workers", "1",
            "--generation-database", "none", "--request-timeout", "20",
            "--suppress-health-check", "all", "--no-color", "--warnings", "off",
            "--report", "junit", "--report-dir", str(tmp_path),
            # Raw RFC 5322 mail has no JSON schema to generate from; its own realistic
            # fixtures (and malformed ones) test it in tests/ingest.
            "--exclude-path", "/v1/channels/email/events",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 540)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-20_000:]
