"""The quarterly review as Markdown (to paste into the review meeting's notes) and the
per-post-mortem figures as CSV (for a spreadsheet)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from escalator.postmortem.reports import Reviewed, Summary


def quarter_bounds(year: int, quarter: int) -> tuple[datetime, datetime]:
    start = datetime(year, 3 * (quarter - 1) + 1, 1, tzinfo=UTC)
    end = (datetime(year + 1, 1, 1, tzinfo=UTC) if quarter == 4
           else datetime(year, 3 * quarter + 1, 1, tzinfo=UTC))
    return start, end


def _cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _table(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return [f"**{title}:** none", ""]
    return [f"| {title} | count |", "|---|---:|",
            *(f"| {_cell(k)} | {v} |" for k, v in counts.items()), ""]


def _minutes(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds / 60:.1f} min"


def markdown(s: Summary, reviewed: list[Reviewed], title: str) -> str:
    lines = [f"# {title}", "",
             f"Period: {s.from_.date().isoformat()} to {s.to.date().isoformat()} (exclusive). "
             f"Escalations closed: **{s.escalations}**, reviews completed: "
             f"**{s.completed_reviews}**.", "", "## Escalations", ""]
    for name, counts in (("severity", s.by_severity), ("team", s.by_team),
                         ("channel", s.by_channel), ("path", s.by_path),
                         ("levels reached", s.levels_reached)):
        lines += _table(name, counts)
    lines += ["## SLA and speed", "", "| clock | breached | rate |", "|---|---:|---:|",
              *(f"| {c} | {b.breached} | {b.rate:.0%} |" for c, b in s.breach_rate.items()),
              "", "| measure | p50 | p90 |", "|---|---:|---:|",
              f"| time to first response | {_minutes(s.time_to_first_response_seconds.p50)} "
              f"| {_minutes(s.time_to_first_response_seconds.p90)} |",
              f"| time to resolution | {_minutes(s.time_to_resolution_seconds.p50)} "
              f"| {_minutes(s.time_to_resolution_seconds.p90)} |", "",
              "## Root causes", ""]
    lines += _table("root cause", s.root_causes)
    if s.recurring_root_causes:
        lines += ["**Recurring:** " + ", ".join(s.recurring_root_causes)
                  + " (the same cause again: fix it at the source).", ""]
    sat = s.satisfaction
    average = "n/a" if sat.average is None else f"{sat.average:.2f} / 5"
    lines += ["## Customer satisfaction", "",
              f"{sat.responses} responses, average {average}.", "",
              "| score | answers |", "|---|---:|",
              *(f"| {k} | {v} |" for k, v in sat.distribution.items()), "",
              "## Action items", "",
              f"{s.action_items.total} in total, {s.action_items.open} open, "
              f"**{s.action_items.overdue} overdue**.", "",
              "## Post-mortems", "",
              "| ticket | severity | closed | levels | root cause | status |",
              "|---|---|---|---:|---|---|"]
    for r in reviewed:
        p = r.postmortem
        lines.append(f"| {_cell(p.subject)} ({p.ticket_id[:8]}) | {p.severity} | "
                     f"{p.closed_at.date().isoformat()} | {r.measures.levels_reached} | "
                     f"{_cell(p.root_cause_category) or 'n/a'} | {p.status} |")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "postmortem_id", "ticket_id", "subject", "closed_at", "severity", "channel", "status",
    "executive", "levels_reached", "time_to_first_response_seconds",
    "time_to_resolution_seconds", "functional_escalations", "hierarchical_escalations",
    "sla_breaches", "reassignments", "notifications_sent", "customer_replies",
    "root_cause_category", "reviewer",
)


def to_csv(reviewed: list[Reviewed]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in reviewed:
        p, m = r.postmortem, r.measures
        writer.writerow([
            p.id, p.ticket_id, p.subject, p.closed_at.isoformat(), p.severity, p.channel,
            p.status, p.executive, m.levels_reached, m.time_to_first_response_seconds,
            m.time_to_resolution_seconds, m.escalations.get("functional", 0),
            m.escalations.get("hierarchical", 0), sum(m.sla_breaches.values()),
            m.reassignments, m.notifications_sent, m.customer_replies,
            p.root_cause_category or "", p.reviewer or "",
        ])
    return out.getvalue()
