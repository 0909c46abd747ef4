"""The customer's satisfaction survey: one answer per ticket, by signed link only.

Customers have no API key: the resolution message carries a link whose token
(``escalator.shared.tokens``) is bound to the ticket and expires. The token's MAC is
checked first (forged or for another ticket: 403), then its expiry (410: the link was
genuine but is too old), then "once per ticket" (409: the primary key decides, so two
concurrent answers cannot both land).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.postmortem.models import Survey
from escalator.postmortem.schemas import SurveyIn
from escalator.shared import tokens
from escalator.shared.app import runtime_of
from escalator.shared.events import SurveySubmitted, utcnow
from escalator.shared.outbox import emit
from escalator.shared.problems import Problem

PURPOSE = "survey"
SOURCE = "/escalator/postmortem"
#: Checking the MAC "as of" the epoch ignores expiry, which tells forged from expired.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_token(secret: str | None, ticket_id: str, token: str) -> None:
    if not secret:
        raise Problem(503, "Service Unavailable", "surveys are not configured "
                      "(ESCALATOR_SURVEY_SECRET is unset)")
    if not tokens.verify(secret, PURPOSE, ticket_id, token, now=_EPOCH):
        raise Problem(403, "Forbidden", "the survey token is not valid for this ticket",
                      errors=[{"field": "query.token", "message": "invalid signature"}])
    if not tokens.verify(secret, PURPOSE, ticket_id, token):
        raise Problem(410, "Gone", "the survey link has expired",
                      errors=[{"field": "query.token", "message": "expired"}])


async def submit(session: AsyncSession, ticket_id: str, token: str, body: SurveyIn) -> Survey:
    settings = runtime_of(session).settings
    secret = getattr(settings, "survey_secret", None)
    check_token(secret.get_secret_value() if secret else None, ticket_id, token)
    survey = Survey(ticket_id=ticket_id, score=body.score, comment=body.comment,
                    submitted_at=utcnow())
    try:
        async with session.begin_nested():
            session.add(survey)
    except IntegrityError:
        raise Problem(409, "Conflict", "this ticket's survey has already been answered"
                      ) from None
    emit(session, SurveySubmitted(ticket_id=ticket_id, score=body.score, comment=body.comment),
         source=SOURCE, time=survey.submitted_at)
    return survey
