"""The notifier's own figures; labels are bounded (channel, outcome), never ticket ids."""

from prometheus_client import Counter, Gauge, Histogram

BREAKER_OPENED = Counter(
    "escalator_delivery_breaker_opened_total",
    "Times a failing destination was paused by the circuit breaker.",
)

DELIVERIES = Counter(
    "escalator_deliveries_total",
    "Delivery attempts by channel and outcome (sent, retried, failed; paused and "
    "released: handed back untried, destination paused or lease too short).",
    ["channel", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "escalator_delivery_seconds",
    "Duration of one delivery attempt (the call to the destination), by channel.",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PENDING = Gauge(
    "escalator_deliveries_pending",
    "Deliveries waiting for their first attempt or a retry.",
)
READ_HORIZON_LAG = Gauge(
    "escalator_notifier_read_horizon_lag_seconds",
    "How far behind the present the consumer has read every partition; beyond "
    "ESCALATOR_DELIVERY_READ_LAG_SECONDS nothing is sent until the backlog is read.",
)
