"""The README is the operator's reference: it must name every setting and both commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from escalator.ingest.settings import IngestSettings
from escalator.notifier.settings import NotifierSettings
from escalator.postmortem.settings import PostmortemSettings
from escalator.router.settings import RouterSettings
from escalator.sla_timer.settings import SlaTimerSettings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("settings", [IngestSettings, RouterSettings, SlaTimerSettings,
                                      NotifierSettings, PostmortemSettings])
def test_every_setting_is_documented(settings: type[BaseSettings]) -> None:
    missing = [f"ESCALATOR_{name.upper()}" for name in settings.model_fields
               if f"`ESCALATOR_{name.upper()}`" not in README]
    assert missing == []


def test_two_commands_come_first() -> None:
    head = README[:1500]
    assert "make run" in head and "make test" in head
