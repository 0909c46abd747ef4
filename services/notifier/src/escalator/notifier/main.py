"""Entry point: ``escalator-notifier [serve|migrate]``."""

from pathlib import Path

from escalator.notifier.admin_api import router as admin_router
from escalator.notifier.api import router
from escalator.notifier.config import DEFAULT_TARGET, NotifierConfig, effective_targets
from escalator.notifier.dispatcher import DISPATCHER, Dispatcher, run_dispatcher
from escalator.notifier.handlers import DIRECTORY, handlers
from escalator.notifier.planner import Directory
from escalator.notifier.service import disable_target, upsert_rules, upsert_targets
from escalator.notifier.settings import NotifierSettings
from escalator.notifier.templates import Links
from escalator.shared.app import Runtime, ServiceSpec, serve
from escalator.shared.config import load_section
from escalator.shared.events import NOTIFICATIONS
from escalator.shared.settings import load_settings


async def start(runtime: Runtime) -> None:
    """Load targets and rules from YAML and the environment; install the dispatcher and
    the planner's directory (people and links named by configuration)."""
    settings = runtime.settings
    assert isinstance(settings, NotifierSettings)
    config = load_section(settings.config_file, "notifier", NotifierConfig)
    targets = effective_targets(config, settings.webhook_url)
    async with runtime.sessionmaker() as session, session.begin():
        await upsert_targets(session, targets)
        await upsert_rules(session, config.rules)
        if all(t.id != DEFAULT_TARGET for t in targets):
            await disable_target(session, DEFAULT_TARGET)
    runtime.extras[DISPATCHER] = Dispatcher(settings, runtime.sessionmaker)
    secret = settings.survey_secret.get_secret_value() if settings.survey_secret else None
    runtime.extras[DIRECTORY] = Directory(
        links=Links(settings.ticket_url, settings.survey_url, secret, settings.survey_link_days),
        executives=config.executives, watchers=config.watchers,
        promise_hours={str(k): v for k, v in config.promise_hours.items()},
        working_hours=config.working_hours,
    )


SPEC = ServiceSpec(
    name="notifier",
    title="Escalator notifier",
    description="Tells the right stakeholders of each escalation, once, in their language "
    "(rules, templates, email and webhooks) and keeps the delivery log.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router, admin_router],
    handlers=handlers,
    on_startup=start,
    workers=[run_dispatcher],
    record_progress=True,
    produces=(NOTIFICATIONS,),
)


def main() -> None:
    serve(SPEC, load_settings(NotifierSettings))


if __name__ == "__main__":
    main()
