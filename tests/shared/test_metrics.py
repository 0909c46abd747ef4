"""Batched histogram observations count exactly what one-by-one observations count."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from escalator.shared.metrics import observe_many


def _series(registry: CollectorRegistry, name: str) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return [line.removeprefix(name) for line in lines
            if line.startswith(name) and "_created" not in line]


def test_observe_many_matches_observe_on_every_bucket_edge() -> None:
    registry = CollectorRegistry()
    bounds = (0.005, 0.1, 1.0, 60.0)
    one = Histogram("one", "one by one", buckets=bounds, registry=registry)
    many = Histogram("many", "batched", buckets=bounds, registry=registry)
    amounts = [0.0, 0.005, 0.0050001, 0.1, 0.5, 1.0, 59.9, 60.0, 61.0, 3600.0] * 3
    for amount in amounts:
        one.observe(amount)
    observe_many(many, amounts)
    observe_many(many, [])
    assert _series(registry, "many") == _series(registry, "one")
    assert '_count 30.0' in _series(registry, "many")
