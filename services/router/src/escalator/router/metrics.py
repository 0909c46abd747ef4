"""The router's domain figures. Level labels are path level indexes (0 = first level), a
small bounded set that means the same thing on every path."""

from prometheus_client import Counter

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
