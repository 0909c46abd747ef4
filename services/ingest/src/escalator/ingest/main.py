"""Entry point: ``escalator-ingest [serve|migrate]``."""

from pathlib import Path

from escalator.ingest.api import router
from escalator.ingest.settings import IngestSettings
from escalator.shared.app import ServiceSpec, serve
from escalator.shared.settings import load_settings

SPEC = ServiceSpec(
    name="ingest",
    title="Escalator ingest",
    description="Normalizes inbound channel events into tickets and owns their lifecycle.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
)


def main() -> None:
    serve(SPEC, load_settings(IngestSettings))


if __name__ == "__main__":
    main()
