"""Prometheus metrics of the shared mechanisms.

Module-level so each is registered once per process. Labels are bounded sets (topic,
event type, route template, status); never ticket ids. Domain figures live in each
service's own module, next to the code that changes them.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "escalator_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "escalator_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
)
EVENTS_PRODUCED = Counter(
    "escalator_events_produced_total",
    "Events published to Kafka by the outbox relay, by logical topic and event type.",
    ["topic", "type"],
)
EVENTS_CONSUMED = Counter(
    "escalator_events_consumed_total",
    "Events taken from Kafka, by topic, event type and outcome "
    "(processed, duplicate, skipped, dead_lettered).",
    ["topic", "type", "outcome"],
)
EVENT_PROCESSING = Histogram(
    "escalator_event_processing_seconds",
    "Time a handler took to apply one event, by topic and event type.",
    ["topic", "type"],
)
EVENT_AGE = Histogram(
    "escalator_event_age_seconds",
    "Time from an event's CloudEvents time to when this service applied it.",
    ["topic", "type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
CONSUMER_LAG = Gauge(
    "escalator_consumer_lag_messages",
    "Messages between the partition's high watermark and this consumer's position.",
    ["topic", "partition"],
)
OUTBOX_BACKLOG = Gauge(
    "escalator_outbox_backlog_events",
    "Committed events not yet published to Kafka.",
)
DEAD_LETTERED = Counter(
    "escalator_dead_lettered_total",
    "Messages sent to the dead-letter topic, by source topic and reason.",
    ["topic", "reason"],
)
DEPENDENCY_UP = Gauge(
    "escalator_dependency_up",
    "1 when the service's last check reached the dependency (database, broker), else 0.",
    ["dependency"],
)


#: Tail latency that no handler's own timing shows: everything a process measures (a
#: request, a batch, a timer's lateness) also waits while the loop is held. The router's
#: steady p99 was set by 3-7 ms collections of one cycle per batch, found only by
#: tracing them by hand. The collector's own CPU time, not wall-clock time: with both
#: cores busy (the pipeline benchmark at 300 events/s) collections timed by the clock
#: read three to four times their CPU, the rest being waits for a core that the event
#: loop lag shows anyway.
GC_CPU = Histogram(
    "escalator_gc_cpu_seconds",
    "CPU time of each run of the cyclic garbage collector, by generation: the process's "
    "event loop stands still at least this long.",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
EVENT_LOOP_LAG = Histogram(
    "escalator_event_loop_lag_seconds",
    "How late the event loop ran a wake-up due every 0.25 s: how long any request or event "
    "waited behind work that held the loop.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

_GC_BY_GENERATION = [GC_CPU.labels(str(generation)) for generation in range(3)]
_gc_started = [0.0]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    # Runs inside whatever code allocated, so it must take no lock that code may hold:
    # the children are made once (``labels()`` takes the metric's lock), and ``observe``
    # holds each value's lock only around float arithmetic, which starts no collection.
    if phase == "start":
        _gc_started[0] = time.thread_time()
    else:
        _GC_BY_GENERATION[info["generation"]].observe(time.thread_time() - _gc_started[0])


def time_gc() -> None:
    """Observe every collection of this process in ``GC_CPU`` (once per process, however
    many apps start in it)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


def observe_many(histogram: Histogram, amounts: Iterable[float]) -> None:
    """``histogram.observe`` (an unlabelled one, or one child) for each amount, with
    one increment per bucket touched: a timer burst observes a hundred thousand lateness
    values, and observing them one by one (a bucket search and two locked increments
    each) showed as 7 % of its CPU in a profile. Reads prometheus_client's per-child bucket values,
    which ``observe`` itself uses."""
    bounds = histogram._upper_bounds
    tally: dict[int, int] = {}
    total = 0.0
    for amount in amounts:
        bucket = bisect_left(bounds, amount)  # the first bound >= amount, as observe picks
        tally[bucket] = tally.get(bucket, 0) + 1
        total += amount
    if not tally:
        return
    histogram._sum.inc(total)
    for bucket, times in tally.items():
        histogram._buckets[bucket].inc(times)

