"""The SLA figures operators alert on."""

from prometheus_client import Counter, Gauge, Histogram

BREACHES = Counter(
    "escalator_sla_breaches_total",
    "SLA breaches fired, by clock and severity.",
    ["clock", "severity"],
)
WARNINGS = Counter(
    "escalator_sla_warnings_total",
    "SLA warnings fired, by clock and severity.",
    ["clock", "severity"],
)
FIRE_LATENESS = Histogram(
    "escalator_sla_fire_lateness_seconds",
    "Time from when a timer was scheduled to fire (warning time, or deadline plus the "
    "breach grace) until the timer loop fired it: the loop's own precision.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
OVERDUE_TIMERS = Gauge(
    "escalator_sla_overdue_timers",
    "Running clocks whose timer is past due by more than the watchdog threshold: "
    "non-zero means the timer loop is stuck or falling behind.",
)
PENDING_TIMERS = Gauge(
    "escalator_sla_pending_timers",
    "Running clocks with a timer still to fire (paused and finished clocks excluded).",
)
READ_HORIZON_LAG = Gauge(
    "escalator_sla_read_horizon_lag_seconds",
    "How far behind the present the consumer has read every partition: timers due after "
    "the horizon wait for it (an acknowledgement made in time may still be unread).",
)
