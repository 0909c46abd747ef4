"""Shared by the ingest tests: fixtures on disk, settings, reading the tickets topic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from escalator.ingest.settings import IngestSettings
from tests.support import Env, read_topic

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def ingest_settings(env: Env, **overrides: Any) -> IngestSettings:
    return env.settings(IngestSettings, config_file=FIXTURES / "ingest.yaml", **overrides)


async def ticket_events(env: Env, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events on the tickets topic, in each ticket's order."""
    records = await read_topic(env.broker.bootstrap, f"{env.prefix}tickets", count=count)
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    return [json.loads(r.value) for r in ordered]


def types_for(events: list[dict[str, Any]], ticket_id: str) -> list[str]:
    return [e["type"] for e in events if e["subject"] == ticket_id]


def api_event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": "crm-1",
        "subject": "Checkout fails",
        "description": "Every card payment fails since 09:10.",
        "severity": "high",
        "customer": {"email": "ops@acme.example", "name": "Acme Ops"},
    }
    body.update(overrides)
    return body
