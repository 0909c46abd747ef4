"""Settings every service reads from ``ESCALATOR_*`` environment variables.

Every process reads the same variable names; what differs between services is only the
defaults (port, database file, Postgres schema, consumer group), which each service sets
in its own subclass. One prefix keeps Compose files, Kubernetes ConfigMaps and the
README's configuration table simple.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound="ServiceSettings")

#: The key ``make run`` uses so a newcomer can call the APIs at once. Refused in production.
DEV_API_KEY = "dev-admin-key"


class ApiKeySpec(BaseModel):
    """An API key as configured: only its SHA-256 is ever stored or shipped in config."""

    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[str]


class ServiceSettings(BaseSettings):
    """Settings shared by all five services; subclasses override the defaults."""

    model_config = SettingsConfigDict(env_prefix="ESCALATOR_", extra="ignore")

    service_name: str = "escalator"
    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    database_url: str = ""
    db_schema: str = ""
    db_pool_size: int = Field(default=10, ge=1)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    topic_partitions: int = Field(default=6, ge=1)
    consumer_group: str = ""
    consumer_batch_size: int = Field(default=500, ge=1)
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    #: How long a fetch waits for records before answering empty. The embedded broker
    #: (Tansu) answers a waiting fetch only at this deadline, even when a record arrives
    #: meanwhile, so it bounds every hop between two services: at 500 ms (Kafka's
    #: default) a hop took 145 ms at the median and 330 ms at worst, at 100 ms 12 and 108.
    #: It also sizes the first batch after an idle spell (all that arrived meanwhile):
    #: at 100 ms that batch set the router's p99 at 1,000 tickets/s (22-26 ms in two of
    #: six runs, 15-17 in the others); at 50 ms, 16-20 ms in four of four. An idle
    #: consumer costs 0.9 % of a core at 50 ms (0.65 % at 100, 1.6 % at 25).
    #: Against Apache Kafka, which answers as soon as a record arrives, 500 saves idle
    #: fetches.
    consumer_fetch_max_wait_ms: int = Field(default=50, ge=1, le=30_000)
    handler_max_attempts: int = Field(default=3, ge=1)

    outbox_batch_size: int = Field(default=500, ge=1)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_retention_hours: float = Field(default=24.0, gt=0)
    #: How often the relay vouches for what it has published (``escalator.shared.
    #: watermarks``): the read horizon of a topic trails the present by about this much,
    #: which must stay within the sla-timer's breach grace (1 s) for breaches to fire on
    #: time. Each one is a record of about 150 bytes per produced topic.
    watermark_interval_seconds: float = Field(default=0.5, gt=0)
    inbox_retention_hours: float = Field(default=336.0, gt=0)

    api_key: SecretStr | None = None
    api_keys: list[ApiKeySpec] = []

    #: Largest request body accepted, refused before parsing (``escalator.shared.bodies``).
    max_request_bytes: int = Field(default=1_048_576, ge=1024)

    config_file: Path | None = None
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="after")
    def _service_defaults(self) -> ServiceSettings:
        """Derive per-service defaults so one variable set can run any service."""
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///var/{self.service_name}.db"
        if not self.db_schema:
            self.db_schema = self.service_name.replace("-", "_")
        if not self.consumer_group:
            self.consumer_group = f"escalator-{self.service_name}"
        return self

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value and not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError(
                "must start with postgresql+asyncpg:// or sqlite+aiosqlite:// "
                f"(got {value.split('://', 1)[0]}://)"
            )
        return value

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> ServiceSettings:
        if self.env == "production":
            if self.api_key is not None and self.api_key.get_secret_value() == DEV_API_KEY:
                raise ValueError("ESCALATOR_API_KEY is the development default; set a real key")
            if self.database_url.startswith("sqlite"):
                raise ValueError("ESCALATOR_DATABASE_URL must be PostgreSQL in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def request_byte_limit(self) -> int:
        """The largest body any endpoint of the service takes (finer limits per route
        may apply inside it)."""
        return self.max_request_bytes

    def topic(self, name: str) -> str:
        """The broker-side name of a logical topic (``tickets`` -> ``<prefix>tickets``)."""
        return f"{self.topic_prefix}{name}"

    def api_key_table(self) -> dict[str, ApiKeySpec]:
        """Configured keys by SHA-256, with the bootstrap admin key added when set."""
        table = {spec.sha256: spec for spec in self.api_keys}
        if self.api_key is not None:
            digest = hash_api_key(self.api_key.get_secret_value())
            table[digest] = ApiKeySpec(name="bootstrap-admin", sha256=digest, scopes=["admin"])
        return table


def hash_api_key(key: str) -> str:
    """API keys are long random tokens, so a plain SHA-256 is the right hash (no salt needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def load_settings(cls: type[S]) -> S:
    """Build settings from the environment, or exit naming each bad variable and why."""
    import sys

    from pydantic import ValidationError

    try:
        return cls()
    except ValidationError as exc:
        lines = [
            f"  ESCALATOR_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        ]
        sys.exit("invalid configuration:\n" + "\n".join(lines))
