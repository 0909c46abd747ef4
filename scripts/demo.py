"""``make demo``: with ``make run`` up, walk one escalation through all five services.

Every line it prints comes from the services' own APIs; nothing is canned. The demo
ticket uses the ``demo`` category, whose SLA policy in config/escalator.yaml gives a
10-second first-response target, so the breach and escalation happen within a minute.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from escalator.shared.settings import DEV_API_KEY

API_KEY = os.environ.get("ESCALATOR_API_KEY", DEV_API_KEY)
URLS = {name: f"http://127.0.0.1:{port}" for name, port in
        {"ingest": 8001, "router": 8002, "sla": 8003, "notifier": 8004,
         "postmortem": 8005}.items()}
client = httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)


def step(n: int, text: str) -> None:
    print(f"\n[{n}] {text}", flush=True)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll until ``probe`` returns something truthy; the demo fails loudly otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.2)
    sys.exit(f"gave up waiting for {what} after {timeout:.0f}s: is `make run` up?")


def get(service: str, path: str, **params: Any) -> httpx.Response:
    return client.get(URLS[service] + path, params=params)


def submit(external_id: str, subject: str, **extra: Any) -> str:
    body = {
        "external_id": external_id,
        "subject": subject,
        "description": "Every card payment fails at checkout since 09:10 UTC.",
        "severity": "high",
        "category": "demo",
        "customer": {"email": "ops@acme.example", "name": "Acme Ops", "tier": "enterprise"},
        **extra,
    }
    response = client.post(f"{URLS['ingest']}/v1/channels/api/events", json=body)
    response.raise_for_status()
    return str(response.json()["ticket_id"])


def assignment(ticket_id: str, min_level: int = 0) -> dict[str, Any] | None:
    response = get("router", f"/v1/assignments/{ticket_id}")
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body if body["level"] >= min_level else None


def clock(ticket_id: str, status: str | None = None) -> dict[str, Any] | None:
    response = get("sla", f"/v1/tickets/{ticket_id}/clocks")
    if response.status_code != 200:
        return None
    for item in response.json()["clocks"]:
        if status is None or item["status"] == status:
            return dict(item)
    return None


def holder(body: dict[str, Any]) -> str:
    who = body.get("assignee")
    return f"{who['name']} ({who['team']})" if who else "nobody available"


def main() -> None:
    for name, url in URLS.items():
        try:
            httpx.get(f"{url}/healthz", timeout=2).raise_for_status()
        except httpx.HTTPError:
            sys.exit(f"{name} is not answering at {url}: start the system with `make run` first")
    run_id = uuid.uuid4().hex[:6]
    started = time.monotonic()

    step(1, "A customer reports a problem through the API channel (ingest)")
    ticket = submit(f"demo-{run_id}", "Checkout fails with error 502")
    print(f"    ticket {ticket} opened: {get('ingest', f'/v1/tickets/{ticket}').json()['status']}")
    calm = submit(f"demo-{run_id}-b", "Invoice PDF shows the wrong VAT number")
    print(f"    second ticket {calm} opened (this one will be acknowledged in time)")

    step(2, "The router picks the first level of the escalation path and an agent")
    first = wait_for("the assignment", lambda: assignment(ticket))
    print(f"    {first['level_name']} on path '{first['path']}': held by {holder(first)}")

    step(3, "The sla-timer starts the first-response clock; an acknowledgement stops it")
    running = wait_for("the SLA clock", lambda: clock(ticket))
    print(f"    {running['name']} clock: target {running['target_seconds']:.0f}s, "
          f"due {running['due_at']}")
    wait_for("the second clock", lambda: clock(calm))
    client.post(f"{URLS['ingest']}/v1/tickets/{calm}/acknowledge").raise_for_status()
    met = wait_for("the acknowledgement", lambda: clock(calm, "met"))
    print(f"    ticket {calm[:8]}… acknowledged at {met['met_at']}: clock {met['status']}")
    print("    nobody acknowledges the first ticket; waiting for its deadline…", flush=True)
    breached = wait_for("the breach", lambda: clock(ticket, "breached"), timeout=90)
    print(f"    breached at {breached['breached_at']} (due {breached['due_at']})")

    step(4, "The router escalates the breached ticket to the next level and reassigns it")
    moved = wait_for("the escalation", lambda: assignment(ticket, min_level=1))
    print(f"    now {moved['level_name']}: held by {holder(moved)}")
    for entry in moved["history"]:
        print(f"      - {entry['at']}  {entry['action']:<10} {entry['level_name']}"
              f"  ({entry.get('trigger') or 'ticket.created'})")

    step(5, "The notifier posted each assignment and escalation to the webhook")
    def sent() -> list[dict[str, Any]] | None:
        items = get("notifier", "/v1/deliveries", ticket_id=ticket, status="sent").json()
        return items["items"] if len(items["items"]) >= 3 else None

    deliveries = wait_for("the deliveries (assigned, escalated, assigned)", sent)
    for delivery in reversed(deliveries):
        print(f"    {delivery['status']:<7} {delivery['about_event_type']:<17} "
              f"-> {delivery['recipient']}")

    step(6, "The ticket is closed; postmortem assembles its timeline from every topic")
    client.post(f"{URLS['ingest']}/v1/tickets/{ticket}/close").raise_for_status()
    listing = wait_for(
        "the post-mortem",
        lambda: get("postmortem", "/v1/postmortems", ticket_id=ticket).json()["items"],
    )
    review = get("postmortem", f"/v1/postmortems/{listing[0]['id']}").json()
    print(f"    post-mortem {review['id']} ({review['status']}), timeline:")
    for entry in review["timeline"]:
        print(f"      - {entry['time']}  {entry['type']:<20} {entry.get('summary', '')}")
    measures = review["measures"]
    shown = ("time_to_close_seconds", "levels_reached", "time_at_level_seconds", "escalations",
             "sla_breaches", "reassignments", "notifications_sent")
    print("    measures: " + ", ".join(f"{k}={measures.get(k)}" for k in shown))
    print(f"    page: {URLS['postmortem']}/pages/postmortems/{review['id']}?key={API_KEY}")
    print(f"\nDone in {time.monotonic() - started:.0f}s.")


if __name__ == "__main__":
    main()
