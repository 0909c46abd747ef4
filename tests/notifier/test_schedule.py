"""Working hours in the recipient's own zone, and what counts as urgent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from escalator.notifier.schedule import WorkingHours, is_urgent, next_working_time

HOURS = WorkingHours()  # 09:00-18:00, Monday to Friday


@pytest.mark.parametrize(("now", "zone", "expected"), [
    # Wednesday 10:00 in Lisbon (UTC+0 in November): within hours, so now.
    (datetime(2026, 11, 25, 10, 0, tzinfo=UTC), "Europe/Lisbon", None),
    # Wednesday 20:00 in Lisbon -> Thursday 09:00 Lisbon.
    (datetime(2026, 11, 25, 20, 0, tzinfo=UTC), "Europe/Lisbon",
     datetime(2026, 11, 26, 9, 0, tzinfo=UTC)),
    # Friday 19:00 in Athens (UTC+2) -> Monday 09:00 Athens = 07:00 UTC.
    (datetime(2026, 11, 27, 17, 0, tzinfo=UTC), "Europe/Athens",
     datetime(2026, 11, 30, 7, 0, tzinfo=UTC)),
    # Wednesday 06:00 in New York (UTC-5) -> 09:00 the same day = 14:00 UTC.
    (datetime(2026, 11, 25, 11, 0, tzinfo=UTC), "America/New_York",
     datetime(2026, 11, 25, 14, 0, tzinfo=UTC)),
    # No zone, or an unknown one: reached at once rather than guessed at.
    (datetime(2026, 11, 28, 3, 0, tzinfo=UTC), None, None),
    (datetime(2026, 11, 28, 3, 0, tzinfo=UTC), "Mars/Olympus", None),
])
def test_next_working_time(now: datetime, zone: str | None, expected: datetime | None) -> None:
    assert next_working_time(now, zone, HOURS) == (expected or now)


def test_urgent_messages_and_bad_hours() -> None:
    assert is_urgent({"sla.breached"}, "critical")
    assert is_urgent({"ticket.escalated", "executive_escalation"}, "low")
    assert not is_urgent({"sla.breached"}, "high")
    with pytest.raises(ValidationError):
        WorkingHours(start="18:00", end="09:00")
    with pytest.raises(ValidationError):
        WorkingHours(days=[0])
    # Read in the recipient's zone: an offset is refused by name, not a TypeError (500).
    with pytest.raises(ValidationError, match="drop the UTC offset"):
        WorkingHours(start="09:00Z")
