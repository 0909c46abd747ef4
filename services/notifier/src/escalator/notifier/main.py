"""Entry point: ``escalator-notifier [serve|migrate]``."""

from pathlib import Path

from escalator.notifier.api import router
from escalator.notifier.config import DEFAULT_TARGET, NotifierConfig, effective_targets
from escalator.notifier.dispatcher import DISPATCHER, Dispatcher, run_dispatcher
from escalator.notifier.handlers import handlers
from escalator.notifier.service import disable_target, upsert_targets
from escalator.notifier.settings import NotifierSettings
from escalator.shared.app import Runtime, ServiceSpec, serve
from escalator.shared.config import load_section
from escalator.shared.settings import load_settings


async def start(runtime: Runtime) -> None:
    """Load the webhook targets from YAML and the environment; install the dispatcher."""
    settings = runtime.settings
    assert isinstance(settings, NotifierSettings)
    config = load_section(settings.config_file, "notifier", NotifierConfig)
    targets = effective_targets(config, settings.webhook_url)
    async with runtime.sessionmaker() as session, session.begin():
        await upsert_targets(session, targets)
        if all(t.id != DEFAULT_TARGET for t in targets):
            await disable_target(session, DEFAULT_TARGET)
    runtime.extras[DISPATCHER] = Dispatcher(settings, runtime.sessionmaker)


SPEC = ServiceSpec(
    name="notifier",
    title="Escalator notifier",
    description="Tells stakeholders of assignments and escalations (webhooks) and keeps "
    "the delivery log.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    handlers=handlers,
    on_startup=start,
    workers=[run_dispatcher],
)


def main() -> None:
    serve(SPEC, load_settings(NotifierSettings))


if __name__ == "__main__":
    main()
