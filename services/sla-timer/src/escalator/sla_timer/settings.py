from pydantic import Field

from escalator.shared.settings import ServiceSettings


class SlaTimerSettings(ServiceSettings):
    service_name: str = "sla-timer"
    port: int = 8003

    #: Longest the timer loop sleeps without looking at the table: bounds how late a
    #: clock started by another replica (which cannot wake this one) may be seen.
    timer_max_idle_seconds: float = Field(default=1.0, gt=0)
    #: Clocks fired per transaction; a burst is worked off in batches of this size.
    timer_batch_size: int = Field(default=1000, ge=1)
    #: How long after a deadline the breach is reported, so an acknowledgement made
    #: before the deadline but still in flight through the broker counts as met.
    breach_grace_seconds: float = Field(default=1.0, ge=0)
    #: A running timer this far past its fire time counts as overdue for the watchdog.
    watchdog_overdue_seconds: float = Field(default=5.0, gt=0)
    #: How often the watchdog counts pending and overdue timers (a count over the
    #: partial index: cheap, but not free with a million pending).
    watch_interval_seconds: float = Field(default=2.0, gt=0)
