"""sla-timer: SLA policies and the clocks that fire warnings and breaches on time.

How the pieces fit:

- ``calendar`` is business-time arithmetic (24x7 or weekly hours in an IANA zone with
  overnight shifts and holidays); ``calendars`` and ``policies`` are their YAML/REST
  specs and storage.
- ``handlers`` turn ticket events into clock changes (start, met, paused, resumed,
  re-targeted, stopped; the clocks are listed there), always at the event's own time,
  so a late-processed event is judged by when it happened. ``service`` holds the
  clock operations themselves.
- ``timers`` is the one loop that fires due clocks. It sleeps until the earliest
  pending fire time (woken after commits that schedule an earlier one), then locks
  due rows, re-checks them and emits ``sla.warning``/``sla.breached`` through the
  outbox in the same transaction: a timer fires exactly once across restarts and
  replicas because "fired" and "event queued" commit together.
- A breach is reported ``breach_grace_seconds`` after the deadline so that an
  acknowledgement already in flight when the clock ran out still counts as met (the
  event time decides). ``sla.breached`` still carries ``due_at`` and the true lateness.
"""
