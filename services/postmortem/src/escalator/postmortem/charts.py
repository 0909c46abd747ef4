"""Inline SVG charts for the read-only pages: no JavaScript library, no build step.

Every chart carries ``class="chart"`` and data attributes saying what it drew, so a
browser test can check both the markup and (via the page's tiny render check) that the
browser laid it out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

from escalator.postmortem.schemas import LevelHold
from escalator.postmortem.timeline import Entry

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948")
BREACH = "#e15759"


def _x(t: datetime, start: datetime, span: float, left: float, width: float) -> float:
    return left + width * max(min((t - start).total_seconds() / span, 1.0), 0.0)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def timeline_chart(holds: Sequence[LevelHold], entries: Sequence[Entry]) -> str:
    """Lanes per level (L1 at the top), a bar for each stretch a level held the ticket,
    a red line where each SLA breach fell, ticks for every other event."""
    if not entries:
        return '<p class="empty">No events in the timeline.</p>'
    start, end = entries[0].time, entries[-1].time
    span = max((end - start).total_seconds(), 1.0)
    levels = sorted({h.level for h in holds}) or [0]
    names = {h.level: h.level_name for h in holds}
    left, width, lane = 110.0, 760.0, 34.0
    top = 20.0
    height = top + lane * len(levels) + 50
    parts = [f'<svg id="timeline-chart" class="chart" role="img" width="{left + width + 20:.0f}"'
             f' height="{height:.0f}" viewBox="0 0 {left + width + 20:.0f} {height:.0f}"'
             f' data-holds="{len(holds)}" data-breaches="'
             f'{sum(e.type == "sla.breached" for e in entries)}"'
             ' xmlns="http://www.w3.org/2000/svg">',
             "<title>Which level held the ticket when, and where the SLA breaches fell</title>"]
    for i, level in enumerate(levels):
        y = top + i * lane
        parts.append(f'<text x="4" y="{y + lane / 2 + 4:.0f}" font-size="12">'
                     f'{escape(names.get(level, f"L{level + 1}"))}</text>'
                     f'<line x1="{left}" x2="{left + width}" y1="{y + lane:.0f}" '
                     f'y2="{y + lane:.0f}" stroke="#ddd"/>')
    row = {level: i for i, level in enumerate(levels)}
    for hold in holds:
        x1 = _x(hold.start, start, span, left, width)
        x2 = max(_x(hold.end, start, span, left, width), x1 + 2)
        y = top + row[hold.level] * lane + 5
        colour = PALETTE[hold.level % len(PALETTE)]
        label = escape(f"{hold.assignee or 'unassigned'} ({_duration(hold.seconds)})")
        parts.append(f'<rect class="hold" x="{x1:.1f}" y="{y:.0f}" width="{x2 - x1:.1f}" '
                     f'height="{lane - 10:.0f}" fill="{colour}"><title>{label}</title></rect>')
        if x2 - x1 > 60:
            parts.append(f'<text x="{x1 + 4:.1f}" y="{y + lane / 2:.0f}" font-size="11" '
                         f'fill="#fff">{label}</text>')
    axis = top + lane * len(levels)
    for e in entries:
        x = _x(e.time, start, span, left, width)
        if e.type == "sla.breached":
            clock = escape(str(e.data.get("clock", "")))
            parts.append(f'<line class="breach" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 10:.0f}"'
                         f' y2="{axis + 8:.0f}" stroke="{BREACH}" stroke-width="3">'
                         f"<title>{clock} SLA breached</title></line>"
                         f'<text x="{x + 3:.1f}" y="{top - 8:.0f}" font-size="10" '
                         f'fill="{BREACH}">{clock} breach</text>')
        else:
            parts.append(f'<line class="event" x1="{x:.1f}" x2="{x:.1f}" y1="{axis:.0f}" '
                         f'y2="{axis + 6:.0f}" stroke="#555"><title>{escape(e.type)}</title>'
                         "</line>")
    parts.append(f'<text x="{left}" y="{axis + 24:.0f}" font-size="11">'
                 f'{escape(start.strftime("%Y-%m-%d %H:%M:%S"))} UTC</text>'
                 f'<text x="{left + width}" y="{axis + 24:.0f}" font-size="11" '
                 f'text-anchor="end">+{_duration(span)}</text></svg>')
    return "".join(parts)


def bar_chart(chart_id: str, title: str, values: Mapping[str, float], *,
              unit: str = "") -> str:
    """Horizontal bars, one per key, labelled with the value."""
    if not values:
        return f'<p class="empty" id="{escape(chart_id)}-empty">{escape(title)}: no data.</p>'
    left, width, bar = 150.0, 420.0, 22.0
    height = 20 + bar * len(values)
    peak = max(max(values.values()), 1e-9)
    parts = [f'<figure><figcaption>{escape(title)}</figcaption>'
             f'<svg id="{escape(chart_id)}" class="chart" role="img"'
             f' width="{left + width + 80:.0f}" height="{height:.0f}" data-bars="{len(values)}"'
             ' xmlns="http://www.w3.org/2000/svg">']
    for i, (key, value) in enumerate(values.items()):
        y = 10 + i * bar
        w = max(width * value / peak, 1.0)
        parts.append(f'<text x="{left - 6}" y="{y + bar / 2 + 4:.0f}" font-size="12" '
                     f'text-anchor="end">{escape(str(key))}</text>'
                     f'<rect class="bar" x="{left}" y="{y + 3:.0f}" width="{w:.1f}" '
                     f'height="{bar - 6:.0f}" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{left + w + 6:.1f}" y="{y + bar / 2 + 4:.0f}" font-size="12">'
                     f'{value:g}{escape(unit)}</text>')
    parts.append("</svg></figure>")
    return "".join(parts)
