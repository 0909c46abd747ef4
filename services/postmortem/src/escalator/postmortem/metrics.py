from prometheus_client import Counter

POSTMORTEMS_CREATED = Counter(
    "escalator_postmortems_created_total",
    "Post-mortems opened for closed tickets, by severity.",
    ["severity"],
)
TIMELINE_EVENTS = Counter(
    "escalator_timeline_events_total",
    "Events stored in ticket timelines (duplicates not counted), by event type.",
    ["type"],
)
CLOSED_WITHOUT_POSTMORTEM = Counter(
    "escalator_closed_without_postmortem_total",
    "Closes of tickets that met no escalation criterion (no post-mortem opened).",
)
