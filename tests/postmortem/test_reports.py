"""Reports, exports and the pages, on one seeded data set through a running service;
pages checked in real headless Chromium.

Seed (closed in November 2026 unless said): A = the factories' story (high, api,
support, path default, 2 levels, first-response breach, first response 90 s, resolved
300 s); B = critical via email, billing team and path, 1 level, no breach, 30 s / 600 s;
C = medium via chat, resolution breach then a functional escalation, 2 levels,
200 s / 1000 s; D = a quiet low ticket (no post-mortem); E = high, closed in October.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx

from escalator.postmortem.main import SPEC
from escalator.postmortem.settings import PostmortemSettings
from escalator.shared import tokens
from escalator.shared.events import (
    EscalationKind,
    EventData,
    Holder,
    Severity,
    TicketAcknowledged,
    TicketClosed,
    TicketCreated,
    TicketResolved,
    TicketStatus,
    utcnow,
)
from tests.postmortem.browser import render
from tests.postmortem.factories import (
    assigned,
    breached,
    closed,
    envelope,
    escalated,
    send,
    story,
    ticket,
)
from tests.postmortem.test_api import postmortem_of
from tests.support import API_KEY, Env, running, wait_until

SECRET = "report-survey-secret"
PERIOD = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}


def life(tid: str, severity: Severity, channel: str, ack: float, resolve: float,
         close: float, middle: list[tuple[float, EventData]]) -> list[Any]:
    snap = {"severity": severity, "channel": channel}
    data = [(0.0, ticket(TicketCreated, tid, TicketStatus.open, **snap)), *middle,
            (ack, ticket(TicketAcknowledged, tid, TicketStatus.acknowledged, **snap)),
            (resolve, ticket(TicketResolved, tid, TicketStatus.resolved, **snap)),
            (close, ticket(TicketClosed, tid, TicketStatus.closed, **snap))]
    return [envelope(d, s) for s, d in data]


def seed(a: str, b: str, c: str, d: str, e: str) -> list[Any]:
    billing = assigned(b, 0, "Bea").model_copy(update={
        "path": "billing", "assignee": Holder(agent_id="bea", name="Bea", email="b@x.example",
                                              team="billing")})
    october = -40 * 86400
    return [
        *[envelope(data, s) for s, data in story(a)], envelope(closed(a), 400),
        *life(b, Severity.critical, "email", 30, 600, 700, [(1, billing)]),
        *life(c, Severity.medium, "chat", 200, 1000, 1100, [
            (1, assigned(c, 0, "Ann")), (100, breached(c, "resolution")),
            (101, escalated(c, 1, EscalationKind.functional))]),
        *life(d, Severity.low, "portal", 10, 20, 30, [(1, assigned(d, 0, "Ann"))]),
        *life(e, Severity.high, "api", october + 10, october + 20, october + 30, []),
    ]


async def review(svc: Any, pm: str, cause: str, items: list[tuple[str, int, str]],
                 complete: bool) -> None:
    today = utcnow().date()
    for title, days, status in items:
        answer = await svc.client.post(f"/v1/postmortems/{pm}/action-items", json={
            "title": title, "owner": "Ann", "status": status,
            "due_date": (today + timedelta(days=days)).isoformat()})
        assert answer.status_code == 201, answer.text
    steps: list[dict[str, Any]] = [{"root_cause": {"category": cause, "text": "why"}}]
    if complete:
        steps += [{"status": "in_review"}, {"status": "completed"}]
    for step in steps:
        answer = await svc.client.patch(f"/v1/postmortems/{pm}", json=step)
        assert answer.status_code == 200, answer.text


async def test_reports_exports_and_pages_on_a_seeded_set(env: Env) -> None:
    a, b, c, d, e = (str(uuid.uuid4()) for _ in range(5))
    settings = env.settings(PostmortemSettings, survey_secret=SECRET)
    async with running(SPEC, settings) as svc:
        await send(env.broker.bootstrap, env.prefix, *seed(a, b, c, d, e))
        ids = {t: (await postmortem_of(svc, t))["id"] for t in (a, b, c, e)}

        async def all_in(pm: str, count: int) -> bool:
            body = (await svc.client.get(f"/v1/postmortems/{pm}")).json()
            return len(body["timeline"]) >= count

        # Topics are consumed independently: wait for every ticket's whole story.
        for t, count in ((a, 10), (b, 5), (c, 7)):
            await wait_until(lambda t=t, count=count: all_in(ids[t], count),
                             message=f"timeline of {t} incomplete")
        await review(svc, ids[a], "process", [("Runbook", -1, "open"), ("Alert", 5, "done")],
                     complete=True)
        await review(svc, ids[b], "process", [], complete=False)
        await review(svc, ids[c], "product_defect", [("Fix parser", 9, "in_progress")],
                     complete=False)
        anonymous = httpx.AsyncClient(base_url=svc.base_url, timeout=10)
        try:
            for t, score in ((a, 4), (b, 2), (d, 5)):
                token = tokens.sign(SECRET, "survey", t, utcnow() + timedelta(days=1))
                answer = await anonymous.post(f"/v1/surveys/{t}", params={"token": token},
                                              json={"score": score})
                assert answer.status_code == 201, answer.text
            page_url = f"{svc.base_url}/pages/postmortems/{ids[a]}"
            assert (await anonymous.get(page_url)).status_code == 401
            # The query-string key is for pages only: the JSON API ignores it.
            api = await anonymous.get(f"/v1/postmortems/{ids[a]}", params={"key": API_KEY})
            assert api.status_code == 401
            page = await anonymous.get(page_url, params={"key": API_KEY})
            assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
        finally:
            await anonymous.aclose()

        s = (await svc.client.get("/v1/reports/summary", params=PERIOD)).json()
        assert s["escalations"] == 3 and s["completed_reviews"] == 1
        assert s["by_severity"] == {"critical": 1, "high": 1, "medium": 1}
        assert s["by_channel"] == {"api": 1, "chat": 1, "email": 1}
        assert s["by_team"] == {"support": 2, "billing": 1}
        assert s["by_path"] == {"default": 2, "billing": 1}
        assert s["breach_rate"] == {"first_response": {"breached": 1, "rate": 0.3333},
                                    "resolution": {"breached": 1, "rate": 0.3333}}
        assert s["time_to_first_response_seconds"] == {"count": 3, "p50": 90.0, "p90": 200.0}
        assert s["time_to_resolution_seconds"] == {"count": 3, "p50": 600.0, "p90": 1000.0}
        assert s["levels_reached"] == {"1": 1, "2": 2}
        assert s["root_causes"] == {"process": 2, "product_defect": 1}
        assert s["recurring_root_causes"] == ["process"]
        assert s["satisfaction"] == {"responses": 2, "average": 3.0,
                                     "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 0}}
        assert s["action_items"] == {"total": 3, "open": 2, "overdue": 1}
        bad = await svc.client.get("/v1/reports/summary",
                                   params={"from": PERIOD["to"], "to": PERIOD["from"]})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.to"
        for value in ("2026-11-01T00:00", "0", "1700000000.5"):
            refused = await svc.client.get("/v1/reports/summary", params={"from": value})
            assert refused.status_code == 422, value
            assert [e["field"] for e in refused.json()["errors"]] == ["query.from"]
        empty = (await svc.client.get("/v1/reports/summary", params={
            "from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z"})).json()
        assert empty["escalations"] == 0 and empty["breach_rate"] == {}
        assert empty["time_to_resolution_seconds"] == {"count": 0, "p50": None, "p90": None}
        assert empty["satisfaction"]["average"] is None

        md = await svc.client.get("/v1/reports/export", params=PERIOD)
        assert md.headers["content-type"].startswith("text/markdown")
        assert md.text.startswith("# Escalation review\n")
        assert "**Recurring:** process" in md.text and "**1 overdue**" in md.text
        assert "| critical | 1 |" in md.text and "| first_response | 1 | 33% |" in md.text
        quarter = await svc.client.get("/v1/reports/quarterly",
                                       params={"year": 2026, "quarter": 4, "format": "csv"})
        rows = list(csv.DictReader(io.StringIO(quarter.text)))
        assert sorted(r["ticket_id"] for r in rows) == sorted([a, b, c, e])
        row_a = next(r for r in rows if r["ticket_id"] == a)
        assert (row_a["levels_reached"], row_a["time_to_first_response_seconds"],
                row_a["hierarchical_escalations"], row_a["root_cause_category"],
                row_a["reviewer"]) == ("2", "90.0", "1", "process", "bootstrap-admin")
        q3 = await svc.client.get("/v1/reports/quarterly", params={"year": 2026, "quarter": 3})
        assert "Escalations closed: **0**" in q3.text

        # The pages, in a real browser: once, on PostgreSQL (the HTML does not depend on
        # the backend, and each browser start costs seconds).
        if env.backend != "postgresql":
            return
        tmp = env.tmp_path
        dom, width, height, size = await render(tmp, f"{page_url}?key={API_KEY}",
                                                "postmortem")
        assert (width, height) == (1200, 1400) and size > 10_000
        assert "Post-mortem: Checkout fails" in dom and "process: why" in dom
        chart = re.search(r'<svg id="timeline-chart"[^>]*>', dom)
        assert chart is not None
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', chart.group(0)))
        assert attrs["data-holds"] == "2" and attrs["data-breaches"] == "1"
        # Laid out by the browser: a real width, and every bar and line drawn.
        assert int(attrs["data-rendered-width"]) > 500
        assert int(attrs["data-rendered-shapes"]) >= 2 + 1 + 9
        assert "1 overdue" in dom and "4 / 5" in dom

        report_url = (f"{svc.base_url}/pages/reports?key={API_KEY}"
                      f"&from={PERIOD['from']}&to={PERIOD['to']}")
        dom, _, _, size = await render(tmp, report_url, "report")
        assert size > 10_000
        assert "Escalation report" in dom
        charts = dict(re.findall(r'<svg id="(chart-[\w-]+)"[^>]*data-rendered-width="(\d+)"',
                                 dom))
        assert set(charts) >= {"chart-severity", "chart-team", "chart-channel", "chart-path",
                               "chart-breach-rate", "chart-speed", "chart-levels",
                               "chart-root-causes", "chart-satisfaction"}
        assert all(int(w) > 300 for w in charts.values()), charts
        bars = re.search(r'<svg id="chart-severity"[^>]*data-bars="(\d+)"', dom)
        assert bars is not None and bars.group(1) == "3"
