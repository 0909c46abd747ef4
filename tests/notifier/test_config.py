"""Configuration rules that need no running service."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from escalator.notifier.config import NotifierConfig, effective_targets
from escalator.notifier.messages import summary
from escalator.notifier.settings import NotifierSettings
from tests.notifier.helpers import assigned, breached


def test_env_url_owns_the_default_target() -> None:
    config = NotifierConfig.model_validate({"webhooks": [
        {"id": "default", "url": "https://yaml.example/hook", "events": ["sla.breached"]},
        {"id": "ops", "url": "https://ops.example/hook", "events": ["ticket.escalated"]},
    ]})
    targets = {t.id: t for t in effective_targets(config, "https://env.example/hook")}
    assert targets["default"].url == "https://env.example/hook"
    assert targets["default"].events == ["sla.breached"]  # the YAML keeps its subscriptions
    assert targets["ops"].url == "https://ops.example/hook"

    only_env = effective_targets(NotifierConfig(), "https://env.example/hook")
    assert [(t.id, t.events) for t in only_env] == [
        ("default", ["ticket.assigned", "ticket.escalated"])]
    assert effective_targets(NotifierConfig(), None) == []


@pytest.mark.parametrize("webhook", [
    {"id": "a", "url": "ftp://x.example", "events": ["ticket.assigned"]},
    {"id": "a", "url": "https://x.example", "events": ["ticket.created"]},
    {"id": "a", "url": "https://x.example", "events": []},
    {"id": "a b", "url": "https://x.example", "events": ["ticket.assigned"]},
    {"id": "a", "url": "https://x.example", "events": ["ticket.assigned"], "secret": "x"},
])
def test_bad_webhook_entries_are_refused(webhook: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NotifierConfig.model_validate({"webhooks": [webhook]})


def test_duplicate_ids_are_refused() -> None:
    hook = {"id": "a", "url": "https://x.example", "events": ["ticket.assigned"]}
    with pytest.raises(ValidationError, match="duplicate webhook ids: a"):
        NotifierConfig.model_validate({"webhooks": [hook, hook]})


def test_settings_refuse_a_lease_shorter_than_a_send() -> None:
    with pytest.raises(ValidationError, match="delivery_lease_seconds"):
        NotifierSettings(webhook_timeout_seconds=10, delivery_lease_seconds=5)
    with pytest.raises(ValidationError, match="webhook_url"):
        NotifierSettings(webhook_url="hooks.example/x")
    assert NotifierSettings(webhook_url="").webhook_url is None


def test_summaries_read_as_one_line() -> None:
    event = assigned(assignee=None)
    assert summary(event) == (f"Ticket {event.subject} (high) assigned at L1 front line to "
                              "nobody (no agent available)")
    breach = breached()
    assert summary(breach) == (f"Ticket {breach.subject} (high) breached its first_response "
                               "SLA (policy high) by 12s")
