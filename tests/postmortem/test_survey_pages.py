"""The survey link a customer clicks: a form page, posted as an ordinary HTML form."""

from __future__ import annotations

from datetime import timedelta

from escalator.postmortem.main import SPEC
from escalator.postmortem.settings import PostmortemSettings
from escalator.shared import tokens
from escalator.shared.events import utcnow
from tests.support import Env, running

SECRET = "survey-page-secret"
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": ""}


async def test_survey_form_round_trip(env: Env) -> None:
    settings = env.settings(PostmortemSettings, survey_secret=SECRET)
    async with running(SPEC, settings) as svc:
        ticket = "t-survey-page"
        good = tokens.sign(SECRET, "survey", ticket, utcnow() + timedelta(days=3))
        page = f"/pages/surveys/{ticket}"

        form = await svc.client.get(page, params={"token": good}, headers={"Authorization": ""})
        assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
        assert 'name="score"' in form.text and "<form" in form.text

        forged = tokens.sign("not-the-secret", "survey", ticket, utcnow() + timedelta(days=3))
        assert (await svc.client.get(page, params={"token": forged},
                                     headers={"Authorization": ""})).status_code == 403
        expired = tokens.sign(SECRET, "survey", ticket, utcnow() - timedelta(seconds=1))
        gone = await svc.client.get(page, params={"token": expired}, headers={"Authorization": ""})
        assert gone.status_code == 410 and "expired" in gone.text

        no_score = await svc.client.post(page, params={"token": good}, content="comment=hi",
                                         headers=FORM)
        assert no_score.status_code == 422
        sent = await svc.client.post(page, params={"token": good},
                                     content="score=5&comment=Quick+and+kind", headers=FORM)
        assert sent.status_code == 201 and "Thank you" in sent.text
        again = await svc.client.post(page, params={"token": good}, content="score=1",
                                      headers=FORM)
        assert again.status_code == 409

        listing = (await svc.client.get("/v1/postmortems")).json()
        assert listing["items"] == []  # a survey alone opens no post-mortem
