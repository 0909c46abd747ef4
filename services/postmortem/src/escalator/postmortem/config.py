"""The ``postmortem:`` section of the YAML configuration file.

Every field is optional: the defaults are what the issue asks for, so a file without the
section (like the one ``make run`` ships) still runs the service as intended.

```yaml
postmortem:
  criteria:                       # which closed tickets get a post-mortem (any one suffices)
    escalated_past_first_level: true
    any_sla_breach: true
    severities: [high, critical]
    executive: true
  root_causes: [product_defect, configuration, ...]   # the taxonomy completion requires
  business_hours:                 # optional; without it business-time measures are null
    timezone: Europe/Athens
    days: {mon: "09:00-17:00", tue: "09:00-17:00", ...}
    holidays: [2026-12-25]
```
"""

from __future__ import annotations

from datetime import date, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.shared.app import Runtime, runtime_of
from escalator.shared.config import TimeZoneName, load_section
from escalator.shared.events import Severity

#: Key of the loaded :class:`PostmortemConfig` in ``Runtime.extras``.
CONFIG = "postmortem.config"

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULT_ROOT_CAUSES = [
    "product_defect", "configuration", "capacity", "third_party", "process", "training",
    "documentation", "customer_environment", "unknown",
]


class Criteria(BaseModel):
    """Which closed tickets were escalations; any one matching criterion suffices."""

    model_config = ConfigDict(extra="forbid")

    escalated_past_first_level: bool = True
    any_sla_breach: bool = True
    severities: list[Severity] = [Severity.high, Severity.critical]
    executive: bool = True


class BusinessHours(BaseModel):
    """One working window per weekday in a time zone, minus holidays."""

    model_config = ConfigDict(extra="forbid")

    timezone: TimeZoneName = "UTC"
    days: dict[str, str] = Field(default_factory=lambda: dict.fromkeys(DAYS[:5], "09:00-17:00"))
    holidays: list[date] = []


    @field_validator("days")
    @classmethod
    def _windows(cls, value: dict[str, str]) -> dict[str, str]:
        for day, window in value.items():
            if day not in DAYS:
                raise ValueError(f"unknown day {day!r}; use {', '.join(DAYS)}")
            start, end = _parse_window(window)
            if start >= end:
                raise ValueError(f"{day}: window {window!r} must start before it ends")
        return value

    def window(self, weekday: int) -> tuple[time, time] | None:
        """The working window of ``weekday`` (0 = Monday), or None on a day off."""
        text = self.days.get(DAYS[weekday])
        return _parse_window(text) if text else None


def _parse_window(text: str) -> tuple[time, time]:
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-", 1))
    except ValueError as exc:
        raise ValueError(f"window {text!r} must look like 09:00-17:00") from exc
    if start.tzinfo is not None or end.tzinfo is not None:
        # Read in the calendar's zone; an aware time cannot be compared with it.
        raise ValueError(f"window {text!r}: times are in the calendar's time zone; "
                         "drop the UTC offset")
    return start, end


class PostmortemConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criteria: Criteria = Criteria()
    root_causes: list[str] = Field(default_factory=lambda: list(DEFAULT_ROOT_CAUSES),
                                   min_length=1)
    business_hours: BusinessHours | None = None


async def load_on_startup(runtime: Runtime) -> None:
    """Validate the section once; the service refuses to start on a bad one."""
    runtime.extras[CONFIG] = load_section(runtime.settings.config_file, "postmortem",
                                          PostmortemConfig)


def config_of(session: AsyncSession) -> PostmortemConfig:
    """The running service's configuration (defaults when none was loaded)."""
    info: Any = session.info
    if "escalator.runtime" not in info:
        return PostmortemConfig()
    config: PostmortemConfig = runtime_of(session).extras.get(CONFIG, PostmortemConfig())
    return config
