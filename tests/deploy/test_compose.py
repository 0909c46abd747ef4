"""The one-host deployment (docker-compose.yml, deploy/), checked by parsing.

Docker does not run on the development machines, so these tests read the files and check
what a reviewer would: the Compose file is valid against the Compose specification's
schema, every service is declared with its entry point, port, schema, health check and
dependencies, the secrets fail fast when unset, Kafka runs in KRaft mode, Prometheus
scrapes every service, and the image runs as a non-root user with a health check.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from escalator.shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"

#: Compose service name -> its HTTP port (DESIGN.md's default ports).
SERVICES = {
    "ingest": 8001,
    "router": 8002,
    "sla-timer": 8003,
    "notifier": 8004,
    "postmortem": 8005,
}
#: One-shot jobs built from the same image.
JOBS = ("topics", "migrate")
#: Variables a service reads beyond the shared ServiceSettings fields.
SERVICE_SPECIFIC_ENV = {
    "notifier": {"ESCALATOR_WEBHOOK_URL", "ESCALATOR_SURVEY_SECRET"},
    "postmortem": {"ESCALATOR_SURVEY_SECRET"},
}
KAFKA_BOOTSTRAP = "kafka:9092"
SECRET_VARS = ("ESCALATOR_API_KEY", "POSTGRES_PASSWORD", "ESCALATOR_SURVEY_SECRET")
#: What an operator might export, for interpolating the file as `docker compose` would.
HOST_ENV = {"ESCALATOR_API_KEY": "k3y-from-the-host", "POSTGRES_PASSWORD": "pw-from-the-host",
            "ESCALATOR_SURVEY_SECRET": "survey-from-the-host", "GRAFANA_ADMIN_PASSWORD": "g"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with COMPOSE_FILE.open() as fh:
        document = yaml.safe_load(fh)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "write environment as a mapping"
    return {key: str(value) for key, value in environment.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def interpolate(value: str, host_env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``, for one value."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2) or "", match.group(3) or ""
        if host_env.get(name):
            return host_env[name]
        if operator == ":?":
            raise LookupError(f"{name}: {argument}")
        return argument if operator == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", substitute, value)


def console_scripts() -> dict[str, str]:
    scripts: dict[str, str] = {}
    for manifest in sorted(ROOT.glob("services/*/pyproject.toml")):
        with manifest.open("rb") as fh:
            scripts.update(tomllib.load(fh)["project"].get("scripts", {}))
    return scripts


def migrate_steps(services: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(schema, console script) for each line of the `migrate` job's shell script."""
    script = command_of(services["migrate"])[-1]
    return re.findall(r"ESCALATOR_DB_SCHEMA=(\S+)\s+(escalator-[\w-]+)\s+migrate", script)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    pairs = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


# --- the file as a whole -----------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    # The schema declares draft-07 under a URL jsonschema does not recognise; name it here.
    validator = Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )


def test_every_service_and_the_infrastructure_are_declared(
    services: dict[str, dict[str, Any]],
) -> None:
    expected = {*SERVICES, *JOBS, "kafka", "postgres", "prometheus"}
    assert expected <= set(services), f"missing: {sorted(expected - set(services))}"


def test_secrets_fail_fast_when_unset() -> None:
    text = COMPOSE_FILE.read_text()
    for name in SECRET_VARS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, f"{name} is never used"
        assert all(use.startswith(":?") for use in uses), (
            f"every use of {name} must be ${{{name}:?message}}, got {uses}"
        )


# --- the five services ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_its_entry_point_on_its_port(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    port = SERVICES[name]
    assert command_of(service) == [f"escalator-{name}", "serve"]
    assert f"{port}:{port}" in [str(mapping) for mapping in service["ports"]]
    assert env_of(service)["ESCALATOR_PORT"] == str(port)
    assert env_of(service)["ESCALATOR_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("name", SERVICES)
def test_service_is_built_from_the_one_image(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert service["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert service["image"] == services["ingest"]["image"]
    assert service["image"].startswith("escalator:")
    assert (ROOT / service["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("name", SERVICES)
def test_service_health_check_probes_healthz_on_its_port(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    test = services[name]["healthcheck"]["test"]
    probe = " ".join(test) if isinstance(test, list) else test
    assert "/healthz" in probe
    # The probe reads the port from the environment the service listens on.
    assert "ESCALATOR_PORT" in probe or str(SERVICES[name]) in probe


@pytest.mark.parametrize("name", SERVICES)
def test_service_reaches_its_database_schema_and_the_broker(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = env_of(services[name])
    assert env["ESCALATOR_ENV"] == "production"
    assert env["ESCALATOR_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["ESCALATOR_DATABASE_URL"]
    assert env["ESCALATOR_DB_SCHEMA"]
    assert env["ESCALATOR_KAFKA_BOOTSTRAP_SERVERS"] == KAFKA_BOOTSTRAP
    assert env["ESCALATOR_API_KEY"].startswith("${ESCALATOR_API_KEY:?")


def test_each_service_has_its_own_schema(services: dict[str, dict[str, Any]]) -> None:
    schemas = [env_of(services[name])["ESCALATOR_DB_SCHEMA"] for name in SERVICES]
    assert len(set(schemas)) == len(schemas), schemas


def test_notifier_gets_the_webhook_url(services: dict[str, dict[str, Any]]) -> None:
    assert env_of(services["notifier"])["ESCALATOR_WEBHOOK_URL"].startswith(
        "${ESCALATOR_WEBHOOK_URL"
    )


@pytest.mark.parametrize("name", SERVICES)
def test_service_starts_after_its_dependencies_are_ready(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    depends_on = services[name]["depends_on"]
    assert depends_on["kafka"]["condition"] == "service_healthy"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["topics"]["condition"] == "service_completed_successfully"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", SERVICES)
def test_service_restarts_and_is_resource_limited(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert service["restart"] in {"always", "unless-stopped", "on-failure"}
    limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
    assert limits.get("memory") or service.get("mem_limit")


def test_every_escalator_variable_is_a_settings_field(
    services: dict[str, dict[str, Any]],
) -> None:
    known = {f"ESCALATOR_{field.upper()}" for field in ServiceSettings.model_fields}
    unknown = {}
    for name in (*SERVICES, *JOBS):
        allowed = known | SERVICE_SPECIFIC_ENV.get(name, set())
        names = {key for key in env_of(services[name]) if key.startswith("ESCALATOR_")}
        if name == "migrate":
            names |= set(re.findall(r"\b(ESCALATOR_\w+)=", command_of(services[name])[-1]))
        if names - allowed:
            unknown[name] = sorted(names - allowed)
    assert not unknown, f"not settings fields: {unknown}"


@pytest.mark.parametrize("name", [*SERVICES, *JOBS])
def test_settings_load_from_the_interpolated_environment(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the container would see passes ServiceSettings' validators (production rules too)."""
    for key in [key for key in os.environ if key.startswith("ESCALATOR_")]:
        monkeypatch.delenv(key)
    env = {key: interpolate(value, HOST_ENV) for key, value in env_of(services[name]).items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = ServiceSettings()
    assert settings.env == "production"
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == HOST_ENV["ESCALATOR_API_KEY"]
    assert HOST_ENV["POSTGRES_PASSWORD"] in settings.database_url
    if name in SERVICES:
        assert settings.port == SERVICES[name]
        assert settings.db_schema == env["ESCALATOR_DB_SCHEMA"]


def test_missing_secrets_stop_compose(services: dict[str, dict[str, Any]]) -> None:
    for secret in SECRET_VARS:
        host_env = {key: value for key, value in HOST_ENV.items() if key != secret}
        needing = [s for s in services.values()
                   if any(secret in str(v) for v in env_of(s).values())]
        assert needing, f"no service uses {secret}"
        with pytest.raises(LookupError, match=secret):
            for value in env_of(needing[0]).values():
                interpolate(value, host_env)


def test_every_console_script_named_in_compose_exists(
    services: dict[str, dict[str, Any]],
) -> None:
    scripts = console_scripts()
    named = {
        word
        for service in services.values()
        if "command" in service
        for part in command_of(service)
        for word in part.split()
        if word.startswith("escalator-")
    }
    assert {f"escalator-{name}" for name in SERVICES} <= named
    assert named <= set(scripts), f"no such console script: {sorted(named - set(scripts))}"


# --- one-shot jobs ---------------------------------------------------------------------------


def test_topics_job_creates_the_topics_once_kafka_is_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    job = services["topics"]
    assert command_of(job) == ["python", "-m", "escalator.shared.bus"]
    assert job["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert str(job["restart"]) == "no"
    assert job["image"] == services["ingest"]["image"]
    env = env_of(job)
    assert env["ESCALATOR_KAFKA_BOOTSTRAP_SERVERS"] == KAFKA_BOOTSTRAP
    assert "ESCALATOR_TOPIC_PARTITIONS" in env
    # ServiceSettings refuses SQLite in production, so the job needs the Postgres URL too.
    assert env["ESCALATOR_DATABASE_URL"].startswith("postgresql+asyncpg://")


def test_migrate_job_migrates_every_service_into_its_own_schema(
    services: dict[str, dict[str, Any]],
) -> None:
    job = services["migrate"]
    assert job["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert str(job["restart"]) == "no"
    assert (
        env_of(job)["ESCALATOR_DATABASE_URL"]
        == env_of(services["ingest"])["ESCALATOR_DATABASE_URL"]
    )
    expected = {
        (env_of(services[name])["ESCALATOR_DB_SCHEMA"], f"escalator-{name}") for name in SERVICES
    }
    assert set(migrate_steps(services)) == expected


# --- infrastructure ----------------------------------------------------------------------------


def test_kafka_is_a_single_kraft_node_without_zookeeper(
    services: dict[str, dict[str, Any]],
) -> None:
    assert not any("zookeeper" in name for name in services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = env_of(kafka)
    assert not any("ZOOKEEPER" in key for key in env)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert f"PLAINTEXT://{KAFKA_BOOTSTRAP}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["CLUSTER_ID"]
    assert "healthcheck" in kafka
    assert any(volume.endswith(":" + env["KAFKA_LOG_DIRS"]) for volume in kafka["volumes"])


def test_postgres_is_healthchecked_and_persistent(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "PostgreSQL data must live in a named volume"
    env = env_of(postgres)
    user, database = env["POSTGRES_USER"], env["POSTGRES_DB"]
    url = env_of(services["ingest"])["ESCALATOR_DATABASE_URL"]
    assert url.startswith(f"postgresql+asyncpg://{user}:")
    assert url.endswith(f"@postgres:5432/{database}")


def test_prometheus_scrapes_every_service(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert any(
        volume.startswith("./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml")
        for volume in prometheus["volumes"]
    )
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    missing = {f"{name}:{port}" for name, port in SERVICES.items()} - targets
    assert not missing, f"Prometheus does not scrape {sorted(missing)}"


# --- the image ----------------------------------------------------------------------------------


def test_dockerfile_runs_as_a_non_root_user_with_a_health_check() -> None:
    instructions = dockerfile_instructions()
    final_stage = instructions[
        max(i for i, (instruction, _) in enumerate(instructions) if instruction == "FROM") :
    ]
    assert final_stage[0][1].startswith("python:3.11-slim")
    users = [arguments for instruction, arguments in final_stage if instruction == "USER"]
    assert users, "the runtime stage must set USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    healthchecks = [
        arguments for instruction, arguments in final_stage if instruction == "HEALTHCHECK"
    ]
    assert len(healthchecks) == 1
    assert "/healthz" in healthchecks[0] and "ESCALATOR_PORT" in healthchecks[0]
    env = " ".join(arguments for instruction, arguments in final_stage if instruction == "ENV")
    assert "ESCALATOR_HOST=0.0.0.0" in env
    assert "PATH=/app/.venv/bin:$PATH" in env
    copies = [arguments for instruction, arguments in final_stage if instruction == "COPY"]
    assert any(arguments.startswith("config/") for arguments in copies)


def test_dockerfile_installs_the_locked_dependencies_without_dev_tools() -> None:
    runs = [
        arguments for instruction, arguments in dockerfile_instructions() if instruction == "RUN"
    ]
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs
    assert all("--frozen" in run and "--no-dev" in run for run in syncs)
