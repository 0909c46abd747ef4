"""The ``ingest:`` section of the versioned YAML file.

Everything is optional, so a file without the section runs with the shipped keyword
rules, the ``medium`` default and an empty customer directory. Customers named here
are upserted by id at start-up; customers created through REST are left alone.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from escalator.ingest.rules import Rule
from escalator.ingest.schemas import AccountId, Email
from escalator.shared.events import Contact, Severity

Id = AccountId


class CustomerConfig(BaseModel):
    """An account of the customer directory, as YAML and REST write it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "id": "acme", "name": "Acme Corp", "email": "ops@acme.example", "tier": "enterprise",
        "language": "pt", "emails": ["cfo@acme.example"], "phones": ["+351210000000"],
        "handles": ["twitter:@acmecorp"],
        "csm": {"name": "Carla Souza", "email": "carla@helpdesk.example"},
        "account_executive": {"name": "Ana Reis", "email": "ana@helpdesk.example"},
        "executive_sponsor": {"name": "Elena Papadopoulou", "email": "elena@helpdesk.example"},
    }]})

    id: Id
    name: str = Field(min_length=1, max_length=200)
    email: Email
    tier: str = Field(default="standard", min_length=1, max_length=50)
    language: str | None = Field(default=None, max_length=20)
    emails: list[Email] = []
    phones: list[Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{5,30}$")]] = []
    handles: list[Annotated[str, StringConstraints(min_length=2, max_length=200)]] = Field(
        default=[], description="`platform:handle`, e.g. `twitter:@acmecorp`")
    csm: Contact | None = None
    account_executive: Contact | None = None
    executive_sponsor: Contact | None = None


class IngestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_severity: Severity = Severity.medium
    builtin_keywords: bool = Field(default=True, description="Use the shipped keyword rules")
    rules: list[Rule] = []
    #: Recipient address (``billing@helpdesk.example``) or local part (``billing``) ->
    #: department, which also becomes the category when the sender gives none.
    departments: dict[str, str] = {}
    customers: list[CustomerConfig] = []
    #: Domains the SMTP listener accepts mail for; empty refuses every recipient.
    smtp_domains: list[str] = []


def load(settings: object) -> IngestConfig:
    from escalator.shared.config import load_section

    return load_section(getattr(settings, "config_file", None), "ingest", IngestConfig)
