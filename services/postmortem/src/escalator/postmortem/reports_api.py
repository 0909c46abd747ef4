"""Report routes: the summary of a period as JSON, and the exports (Markdown, CSV)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from escalator.postmortem import exports, reports
from escalator.shared.app import SessionDep
from escalator.shared.auth import require
from escalator.shared.config import Timestamp
from escalator.shared.events import utcnow
from escalator.shared.problems import Problem

router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=[require(
    "postmortems:read")])
DEFAULT_DAYS = 90

FromQuery = Annotated[Timestamp | None, Query(alias="from", description=(
    "Start (inclusive) of the period, by close time; default 90 days before `to`"))]
ToQuery = Annotated[Timestamp | None, Query(alias="to",
                                             description="End (exclusive); default now")]


class ExportFormat(StrEnum):
    markdown = "markdown"
    csv = "csv"


def period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or utcnow()
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise Problem(422, "Unprocessable Content", "'from' must be before 'to'",
                      errors=[{"field": "query.to", "message": "must be after 'from'"}])
    return start, end


@router.get("/summary", response_model=reports.Summary, response_model_by_alias=True)
async def summary(session: SessionDep, start: FromQuery = None,
                  end: ToQuery = None) -> reports.Summary:
    """Escalations closed in the period: volumes, breach rates, speed (p50/p90), levels,
    recurring root causes, satisfaction and action items."""
    start, end = period(start, end)
    result, _ = await reports.summary(session, start, end, today=utcnow().date())
    return result


async def _export(session: SessionDep, start: datetime, end: datetime, fmt: ExportFormat,
                  title: str) -> PlainTextResponse:
    result, reviewed = await reports.summary(session, start, end, today=utcnow().date())
    if fmt is ExportFormat.csv:
        return PlainTextResponse(exports.to_csv(reviewed), media_type="text/csv",
                                 headers={"Content-Disposition":
                                          'attachment; filename="postmortems.csv"'})
    return PlainTextResponse(exports.markdown(result, reviewed, title),
                             media_type="text/markdown")


@router.get("/export", response_class=PlainTextResponse,
            responses={200: {"content": {"text/markdown": {}, "text/csv": {}}}})
async def export(session: SessionDep, start: FromQuery = None,
                 end: ToQuery = None,
                 format: ExportFormat = ExportFormat.markdown) -> PlainTextResponse:
    """The period's review as Markdown, or one CSV row per post-mortem."""
    start, end = period(start, end)
    return await _export(session, start, end, format, "Escalation review")


@router.get("/quarterly", response_class=PlainTextResponse,
            responses={200: {"content": {"text/markdown": {}, "text/csv": {}}}})
async def quarterly(session: SessionDep, year: Annotated[int, Query(ge=2000, le=2100)],
                    quarter: Annotated[int, Query(ge=1, le=4)],
                    format: ExportFormat = ExportFormat.markdown) -> PlainTextResponse:
    """The quarterly review export (calendar quarters, UTC)."""
    start, end = exports.quarter_bounds(year, quarter)
    return await _export(session, start, end, format,
                         f"Quarterly escalation review: {year} Q{quarter}")
