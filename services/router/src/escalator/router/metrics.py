"""The router's domain figures. Level labels are path level indexes (0 = first level), a
small bounded set that means the same thing on every path."""

from prometheus_client import Counter, Gauge

ASSIGNMENTS = Counter(
    "escalator_assignments_total",
    "Assignment decisions, by path level and outcome (assigned, unassigned).",
    ["level", "outcome"],
)
ESCALATIONS = Counter(
    "escalator_escalations_total",
    "Tickets moved to another level, by target level, kind and trigger.",
    ["to_level", "kind", "trigger"],
)
PENDING_MOVES = Gauge(
    "escalator_router_pending_moves",
    "Moves (breaches, escalation requests) read before their ticket and kept until it is "
    "routed; recounted from the database, so every replica reports the same value.",
)
PENDING_OLDEST = Gauge(
    "escalator_router_pending_move_age_seconds",
    "Age of the oldest kept move: it should stay near the consumer lag; growing, a "
    "ticket's creation is missing (dropped upstream, or a topic not consumed).",
)
