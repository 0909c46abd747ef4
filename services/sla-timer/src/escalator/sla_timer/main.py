"""Entry point: ``escalator-sla-timer [serve|migrate]``."""

from pathlib import Path

from escalator.shared.app import Runtime, ServiceSpec, serve
from escalator.shared.config import load_section
from escalator.shared.events import SLA
from escalator.shared.settings import load_settings
from escalator.sla_timer.api import router
from escalator.sla_timer.handlers import TIMERS, handlers
from escalator.sla_timer.policies import SlaConfig, upsert_policies
from escalator.sla_timer.settings import SlaTimerSettings
from escalator.sla_timer.timers import TimerLoop


async def start(runtime: Runtime) -> None:
    """Load the policies from the config file and get the timer loop ready for handlers."""
    settings = runtime.settings
    assert isinstance(settings, SlaTimerSettings)
    config = load_section(settings.config_file, "sla", SlaConfig)
    async with runtime.sessionmaker() as session, session.begin():
        await upsert_policies(session, config)
    runtime.extras[TIMERS] = TimerLoop(settings, runtime.sessionmaker)


async def timer_loop(runtime: Runtime) -> None:
    timers: TimerLoop = runtime.extras[TIMERS]
    if runtime.runner is not None:
        timers.follow(runtime.runner)
    await timers.run()


async def timer_watch(runtime: Runtime) -> None:
    timers: TimerLoop = runtime.extras[TIMERS]
    await timers.watch()


SPEC = ServiceSpec(
    name="sla-timer",
    title="Escalator sla-timer",
    description="Runs the SLA clocks of every ticket and fires warnings and breaches on time.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    handlers=handlers,
    on_startup=start,
    workers=[timer_loop, timer_watch],
    record_progress=True,
    produces=(SLA,),
)


def main() -> None:
    serve(SPEC, load_settings(SlaTimerSettings))


if __name__ == "__main__":
    main()
