"""Entry point: ``escalator-ingest [serve|migrate]``."""

from __future__ import annotations

import logging
from pathlib import Path

from escalator.ingest import config, customers
from escalator.ingest.api import router
from escalator.ingest.channels_api import router as channels_router
from escalator.ingest.groupcommit import GroupCommit
from escalator.ingest.handlers import handlers
from escalator.ingest.metrics import count_open_tickets
from escalator.ingest.settings import IngestSettings
from escalator.shared.app import Runtime, ServiceSpec, serve
from escalator.shared.events import TICKETS
from escalator.shared.gauges import database_gauge
from escalator.shared.settings import load_settings

log = logging.getLogger(__name__)


async def load_on_startup(runtime: Runtime) -> None:
    """Validate the ``ingest:`` YAML section, then upsert its customers (one transaction)."""
    section = config.load(runtime.settings)
    runtime.extras["config"] = section
    runtime.extras["group_commit"] = GroupCommit(runtime.sessionmaker, section)
    async with runtime.sessionmaker() as session, session.begin():
        for entry in section.customers:
            await customers.upsert(session, entry)
    if section.customers:
        log.info("customer directory: %d accounts from config", len(section.customers))


async def smtp_worker(runtime: Runtime) -> None:
    from escalator.ingest.smtp import run_listener

    await run_listener(runtime)


SPEC = ServiceSpec(
    name="ingest",
    title="Escalator ingest",
    description="Normalizes inbound channel events (email, chat, phone, social, portal, API, "
    "monitoring) into tickets and owns their lifecycle.",
    migrations=Path(__file__).parent / "migrations",
    routers=[channels_router, router],
    handlers=handlers,
    on_startup=load_on_startup,
    workers=[smtp_worker, database_gauge(count_open_tickets)],
    produces=(TICKETS,),
)


def main() -> None:
    serve(SPEC, load_settings(IngestSettings))


if __name__ == "__main__":
    main()
