"""Read-only, server-rendered HTML pages: one per post-mortem, and the report.

Auth: a browser navigation cannot send an ``Authorization`` header, so pages (and only
pages; the JSON API stays header-only) also accept the API key as ``?key=``. That makes a
link people can open and bookmark without a login flow we do not have. The cost, a key
in the URL, is contained: only the ``postmortems:read`` scope is needed (hand out a
read-only key for pages), our logs record route templates, never query strings, and
pages answer ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store`` so the
key does not travel on to other sites or stay in shared caches.

A tiny inline script marks each chart with its laid-out size (``data-rendered-*``), so
a headless-browser test can tell a chart that rendered from markup that merely exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse

from escalator.postmortem import reports, service
from escalator.postmortem.charts import bar_chart, timeline_chart
from escalator.postmortem.reports_api import period
from escalator.shared.app import SessionDep
from escalator.shared.config import Timestamp
from escalator.shared.events import utcnow
from escalator.shared.problems import Problem
from escalator.shared.settings import hash_api_key

router = APIRouter(prefix="/pages", tags=["pages"], include_in_schema=True)
SCOPE = "postmortems:read"
HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                      "script-src 'unsafe-inline'; img-src data:"}

STYLE = """body{font-family:DejaVu Sans,sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left;font-size:13px}.overdue{color:#b00;font-weight:bold}h1{font-size:22px}
figure{margin:8px 0}figcaption{font-weight:bold;font-size:14px}.grid{display:flex;
flex-wrap:wrap;gap:12px}"""
RENDER_CHECK = """<script>addEventListener('load',()=>{for(const s of
document.querySelectorAll('svg.chart')){const r=s.getBoundingClientRect();
s.dataset.renderedWidth=Math.round(r.width);s.dataset.renderedShapes=[...s.querySelectorAll(
'rect,line')].filter(e=>{const b=e.getBoundingClientRect();return b.width>0||b.height>0}
).length}})</script>"""


def authorize(request: Request, key: str | None, authorization: str | None) -> None:
    """Admit the bearer header or the ``key`` query parameter, with the read scope."""
    secret = key
    if authorization and authorization.lower().startswith("bearer "):
        secret = authorization[7:]
    if not secret:
        raise Problem(401, "Unauthorized", "add ?key=<api key> to the page address",
                      headers={"WWW-Authenticate": "Bearer"})
    spec = request.app.state.runtime.api_keys.get(hash_api_key(secret))
    if spec is None:
        raise Problem(401, "Unauthorized", "unknown API key",
                      headers={"WWW-Authenticate": "Bearer"})
    if SCOPE not in spec.scopes and "admin" not in spec.scopes:
        raise Problem(403, "Forbidden", f"this API key lacks the '{SCOPE}' scope")


KeyQuery = Annotated[str | None, Query(description="API key, for links opened in a browser")]
AuthHeader = Annotated[str | None, Header()]


def _page(title: str, body: str) -> HTMLResponse:
    html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>'
            f"{escape(title)}</title><style>{STYLE}</style></head><body>{body}"
            f"{RENDER_CHECK}</body></html>")
    return HTMLResponse(html, headers=HEADERS)


def _rows(pairs: Iterable[tuple[str, object]]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(_text(v))}</td></tr>"
                               for k, v in pairs) + "</table>"


def _text(value: object) -> str:
    if value is None or value == "" or value == {} or value == []:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@router.get("/postmortems/{postmortem_id}", response_class=HTMLResponse)
async def postmortem_page(postmortem_id: str, request: Request, session: SessionDep,
                          key: KeyQuery = None, authorization: AuthHeader = None
                          ) -> HTMLResponse:
    """One post-mortem: facts, the timeline chart, measures, review, action items."""
    authorize(request, key, authorization)
    d = await service.detail(session, postmortem_id)
    m = d.measures
    chart = timeline_chart(m.level_holds, await service.timeline(session, d.ticket_id))
    items = "".join(
        f'<tr class="{"overdue" if i.overdue else ""}"><td>{escape(i.title)}</td>'
        f"<td>{escape(i.owner)}</td><td>{i.due_date.isoformat()}</td><td>{i.status}"
        f'{" (overdue)" if i.overdue else ""}</td></tr>' for i in d.action_items)
    survey = ("no answer yet" if d.survey is None else
              f"{d.survey.score} / 5" + (f": {d.survey.comment}" if d.survey.comment else ""))
    body = (
        f"<h1>Post-mortem: {escape(d.subject)}</h1>"
        + _rows([("Ticket", d.ticket_id), ("Status", d.status), ("Severity", d.severity),
                 ("Customer", f"{d.customer_name} ({d.customer_tier})"),
                 ("Why reviewed", d.reasons), ("Closed", d.closed_at),
                 ("Reviewer", d.reviewer), ("Completed", d.completed_at)])
        + "<h2>Timeline</h2>" + chart
        + "<h2>Measures</h2>"
        + _rows([("Time to first response (s)", m.time_to_first_response_seconds),
                 ("… in business hours (s)", m.time_to_first_response_business_seconds),
                 ("Time to resolution (s)", m.time_to_resolution_seconds),
                 ("… in business hours (s)", m.time_to_resolution_business_seconds),
                 ("Levels reached", m.levels_reached),
                 ("Time at each level (s)", m.time_at_level_seconds),
                 ("Escalations", m.escalations), ("SLA breaches", m.sla_breaches),
                 ("Reassignments", m.reassignments),
                 ("Notifications sent / failed",
                  f"{m.notifications_sent} / {m.notifications_failed}"),
                 ("Customer replies", m.customer_replies),
                 ("Channels", m.channels_used)])
        + "<h2>Review</h2>"
        + _rows([("Summary", d.summary), ("Customer impact", d.customer_impact),
                 ("Root cause", f"{d.root_cause.category}: {d.root_cause.text}"
                  if d.root_cause else None),
                 ("What went well", d.went_well), ("What went badly", d.went_badly),
                 ("Improvements", d.improvements.model_dump(exclude_none=True)),
                 ("Concessions", d.concessions), ("Customer satisfaction", survey)])
        + f"<h2>Action items ({d.action_items_overdue} overdue)</h2>"
        + (f"<table><tr><th>Title</th><th>Owner</th><th>Due</th><th>Status</th></tr>{items}"
           "</table>" if items else "<p>None.</p>")
        + "<h2>Events</h2><table><tr><th>Time</th><th>Event</th><th>What happened</th></tr>"
        + "".join(f"<tr><td>{_text(t.time)}</td><td>{escape(t.type)}</td>"
                  f"<td>{escape(t.summary)}</td></tr>" for t in d.timeline)
        + "</table>")
    return _page(f"Post-mortem {d.subject}", body)


@router.get("/reports", response_class=HTMLResponse)
async def report_page(request: Request, session: SessionDep, key: KeyQuery = None,
                      authorization: AuthHeader = None,
                      start: Annotated[Timestamp | None, Query(alias="from")] = None,
                      end: Annotated[Timestamp | None, Query(alias="to")] = None
                      ) -> HTMLResponse:
    """The period's figures as plots."""
    authorize(request, key, authorization)
    start, end = period(start, end)
    s, _ = await reports.summary(session, start, end, today=utcnow().date())
    minutes = {f"{name} p{q}": round(v / 60, 1)
               for name, p in (("first response", s.time_to_first_response_seconds),
                               ("resolution", s.time_to_resolution_seconds))
               for q, v in (("50", p.p50), ("90", p.p90)) if v is not None}
    charts = [
        bar_chart("chart-severity", "Escalations by severity", s.by_severity),
        bar_chart("chart-team", "Escalations by team", s.by_team),
        bar_chart("chart-channel", "Escalations by channel", s.by_channel),
        bar_chart("chart-path", "Escalations by path", s.by_path),
        bar_chart("chart-breach-rate", "Breach rate by clock",
                  {c: round(b.rate * 100, 1) for c, b in s.breach_rate.items()}, unit="%"),
        bar_chart("chart-speed", "Time to first response / resolution (min)", minutes),
        bar_chart("chart-levels", "Levels reached", s.levels_reached),
        bar_chart("chart-root-causes", "Root causes", s.root_causes),
        bar_chart("chart-satisfaction", "Satisfaction (answers by score)",
                  s.satisfaction.distribution),
    ]
    body = (f"<h1>Escalation report</h1><p>{_text(s.from_)} to {_text(s.to)}</p>"
            + _rows([("Escalations", s.escalations), ("Reviews completed", s.completed_reviews),
                     ("Recurring root causes", s.recurring_root_causes),
                     ("Satisfaction average", s.satisfaction.average),
                     ("Action items open / overdue",
                      f"{s.action_items.open} / {s.action_items.overdue}")])
            + '<div class="grid">' + "".join(charts) + "</div>")
    return _page("Escalation report", body)
