"""Entry point: ``escalator-router [serve|migrate]``."""

from pathlib import Path

from escalator.router.admin import router as admin_router
from escalator.router.api import router
from escalator.router.config import load_on_startup
from escalator.router.handlers import handlers
from escalator.router.settings import RouterSettings
from escalator.shared.app import ServiceSpec, serve
from escalator.shared.settings import load_settings

SPEC = ServiceSpec(
    name="router",
    title="Escalator router",
    description="Routes each ticket along its escalation path to an available agent, and "
    "escalates and reassigns it on SLA breaches, acknowledgement timeouts, requests and by "
    "hand, explaining every decision.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router, admin_router],
    handlers=handlers,
    on_startup=load_on_startup,
)


def main() -> None:
    serve(SPEC, load_settings(RouterSettings))


if __name__ == "__main__":
    main()
