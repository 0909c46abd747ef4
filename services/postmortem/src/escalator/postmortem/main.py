"""Entry point: ``escalator-postmortem [serve|migrate]``."""

from pathlib import Path

from escalator.postmortem import pages, reports_api, survey_pages
from escalator.postmortem.api import router, surveys_router
from escalator.postmortem.config import load_on_startup
from escalator.postmortem.handlers import handlers
from escalator.postmortem.metrics import count_pending_reviews
from escalator.postmortem.settings import PostmortemSettings
from escalator.shared.app import ServiceSpec, serve
from escalator.shared.events import POSTMORTEMS
from escalator.shared.gauges import database_gauge
from escalator.shared.settings import load_settings

SPEC = ServiceSpec(
    name="postmortem",
    title="Escalator postmortem",
    description="Collects every ticket's timeline across all topics and opens a post-mortem "
    "with its measures when the ticket closes.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router, surveys_router, reports_api.router, pages.router, survey_pages.router],
    handlers=handlers,
    on_startup=load_on_startup,
    workers=[database_gauge(count_pending_reviews)],
    produces=(POSTMORTEMS,),
)


def main() -> None:
    serve(SPEC, load_settings(PostmortemSettings))


if __name__ == "__main__":
    main()
