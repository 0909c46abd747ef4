"""The ``postmortem:`` YAML section: optional, defaults as the issue asks, strict."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalator.postmortem.config import DEFAULT_ROOT_CAUSES, PostmortemConfig
from escalator.shared.config import ConfigError, load_section
from escalator.shared.events import Severity

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_file_and_no_file_give_the_defaults() -> None:
    for path in (REPO / "config" / "escalator.yaml", None):
        config = load_section(path, "postmortem", PostmortemConfig)
        assert config.criteria.escalated_past_first_level and config.criteria.any_sla_breach
        assert config.criteria.executive
        assert config.criteria.severities == [Severity.high, Severity.critical]
        assert config.root_causes == DEFAULT_ROOT_CAUSES and config.business_hours is None


@pytest.mark.parametrize(("section", "field"), [
    ("criteria: {severities: [urgent]}", "postmortem.criteria.severities.0"),
    ("criteria: {sla: true}", "postmortem.criteria.sla"),
    ("root_causes: []", "postmortem.root_causes"),
    ("business_hours: {timezone: Mars/Olympus}", "postmortem.business_hours.timezone"),
    ("business_hours: {days: {mon: '17:00-09:00'}}", "postmortem.business_hours.days"),
    ("business_hours: {days: {funday: '09:00-17:00'}}", "postmortem.business_hours.days"),
    ("business_hours: {days: {mon: '09:00Z-17:00'}}", "postmortem.business_hours.days"),
])
def test_a_bad_section_is_refused_naming_the_entry(tmp_path: Path, section: str,
                                                    field: str) -> None:
    path = tmp_path / "escalator.yaml"
    path.write_text(f"postmortem:\n  {section}\n")
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_section(path, "postmortem", PostmortemConfig)
