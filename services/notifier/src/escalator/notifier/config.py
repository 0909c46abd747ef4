"""The ``notifier`` section of the versioned YAML file (``ESCALATOR_CONFIG_FILE``).

Example::

    notifier:
      webhooks:
        - id: ops-chat
          url: https://hooks.example/escalations
          events: [ticket.escalated, sla.breached]
          format: slack            # or json (default)
      rules:
        - id: exec-escalations
          events: [executive_escalation]
          recipients: [executives, account_executive, supervisor]
        - id: customer-resolution
          events: [ticket.resolved]
          recipients: [customer]
      executives: [{name: Dana Ruiz, email: dana@corp.example, timezone: Europe/Lisbon}]
      watchers: []
      promise_hours: {critical: 1, high: 4, medium: 8, low: 24}
      working_hours: {start: "09:00", end: "18:00", days: [1, 2, 3, 4, 5]}

Entries are upserted by id at every start, so git stays the source of truth for the
targets and rules it names; rules it does not name are left alone (the REST API owns
them). ``ESCALATOR_WEBHOOK_URL`` owns the target with id ``default``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from escalator.notifier.rules import Rule
from escalator.notifier.schedule import WorkingHours
from escalator.shared.config import unique_ids
from escalator.shared.events import Contact, Severity

#: Event types a webhook target may subscribe to: the ones the notifier consumes.
NotifiableEvent = Literal["ticket.assigned", "ticket.escalated", "sla.breached"]
DEFAULT_EVENTS: list[str] = ["ticket.assigned", "ticket.escalated"]
DEFAULT_TARGET = "default"


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    url: Annotated[str, StringConstraints(max_length=2000)]
    events: list[NotifiableEvent] = Field(min_length=1)
    enabled: bool = True
    #: ``json``: the envelope plus a text line; ``slack``: an incoming-webhook payload.
    format: Literal["json", "slack"] = "json"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class NotifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhooks: list[WebhookConfig] = []
    rules: list[Rule] = []
    #: Reached by the ``executives`` and ``watchers`` roles.
    executives: list[Contact] = []
    watchers: list[Contact] = []
    #: When internal recipients are at work, in their own zones (urgent messages ignore it).
    working_hours: WorkingHours = WorkingHours()
    #: First-response promise quoted in the customer's acknowledgement, by severity.
    promise_hours: dict[Severity, float] = Field(
        default_factory=lambda: {Severity.critical: 1.0, Severity.high: 4.0,
                                 Severity.medium: 8.0, Severity.low: 24.0})

    @field_validator("rules")
    @classmethod
    def _unique_rules(cls, value: list[Rule]) -> list[Rule]:
        return unique_ids(value, "rule")

    @field_validator("webhooks")
    @classmethod
    def _unique_ids(cls, value: list[WebhookConfig]) -> list[WebhookConfig]:
        return unique_ids(value, "webhook")


def effective_targets(config: NotifierConfig, webhook_url: str | None) -> list[WebhookConfig]:
    """The YAML targets with the environment's default target applied on top.

    ``ESCALATOR_WEBHOOK_URL`` sets the URL of ``default`` (keeping the events the YAML
    gives it, if any). Without the variable and without a YAML entry, ``default`` is
    disabled, so unsetting the variable really stops the posts.
    """
    targets = {w.id: w for w in config.webhooks}
    yaml_default = targets.get(DEFAULT_TARGET)
    if webhook_url is not None:
        events = list(yaml_default.events) if yaml_default else DEFAULT_EVENTS
        targets[DEFAULT_TARGET] = WebhookConfig.model_validate(
            {"id": DEFAULT_TARGET, "url": webhook_url, "events": events}
        )
    return list(targets.values())
