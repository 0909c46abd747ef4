from prometheus_client import Counter

TICKETS_CREATED = Counter(
    "escalator_tickets_created_total",
    "Tickets opened, by channel and severity.",
    ["channel", "severity"],
)
