"""The survey as a customer sees it: the link in the resolution message opens a form.

Customers click a link; they do not send JSON. ``GET /pages/surveys/{ticket_id}?token=``
checks the signed token first (a forged or expired link says so instead of showing a
form), and the form posts back to the same address as an ordinary HTML form, so no
script is needed. Both go through the same ``surveys.submit`` as the JSON endpoint:
one answer per ticket, whichever way it arrives.
"""

from __future__ import annotations

from html import escape
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from escalator.postmortem import surveys
from escalator.postmortem.schemas import SurveyIn
from escalator.shared.app import SessionDep, runtime_of
from escalator.shared.problems import Problem

router = APIRouter(prefix="/pages", tags=["surveys"])
Token = Annotated[str, Query(min_length=1, max_length=200, description="From the survey link")]
HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                      "form-action 'self'"}
STYLE = ("body{font-family:DejaVu Sans,sans-serif;margin:24px;max-width:640px;color:#222}"
         "label{margin-right:12px}textarea{width:100%;height:6em}button{margin-top:12px}")
MAX_FORM_BYTES = 20_000


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>'
            f"{escape(title)}</title><style>{STYLE}</style></head><body><h1>{escape(title)}"
            f"</h1>{body}</body></html>")
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _problem_page(problem: Problem) -> HTMLResponse:
    return _page(problem.title, f"<p>{escape(problem.detail or problem.title)}</p>",
                 problem.status)


@router.get("/surveys/{ticket_id}", response_class=HTMLResponse,
            summary="The satisfaction survey form the resolution message links to")
async def survey_form(ticket_id: str, token: Token, session: SessionDep) -> HTMLResponse:
    secret = getattr(runtime_of(session).settings, "survey_secret", None)
    try:
        surveys.check_token(secret.get_secret_value() if secret else None, ticket_id, token)
    except Problem as problem:
        return _problem_page(problem)
    choices = "".join(
        f'<label><input type="radio" name="score" value="{n}" required> {n}</label>'
        for n in range(1, 6)
    )
    return _page("How did we do?", (
        "<p>1 = very unhappy, 5 = very happy.</p>"
        f'<form method="post"><p>{choices}</p>'
        '<p><label for="comment">Anything you want to tell us?</label></p>'
        '<textarea id="comment" name="comment" maxlength="5000"></textarea>'
        '<p><button type="submit">Send</button></p></form>'
    ))


@router.post("/surveys/{ticket_id}", response_class=HTMLResponse,
             summary="Submit the survey form (application/x-www-form-urlencoded)")
async def survey_submit(
    ticket_id: str, token: Token, request: Request, session: SessionDep
) -> HTMLResponse:
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return _page("Too long", "<p>The answer is too long.</p>", 413)
    form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
    try:
        answer = SurveyIn(score=form.get("score", ""), comment=form.get("comment") or None)
    except ValidationError:
        return _page("Please choose a score", "<p>Pick a score from 1 to 5 and send again.</p>",
                     422)
    try:
        await surveys.submit(session, ticket_id, token, answer)
    except Problem as problem:
        return _problem_page(problem)
    return _page("Thank you", "<p>Your answer reached the team.</p>", 201)
