"""A run of events planned together gives what planning them one at a time gives.

The consumer hands the planner every run of events of a poll at once, whatever their
types (``plan_deliveries``: the run's projection rows read and written once, its
deliveries inserted with one statement). Each event must still be judged on its ticket
as the events before it in the run left it, and throttling must still see the run's own
deliveries; so the same story is told twice, to two sets of tickets in one database, and
the deliveries and projections must match.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from escalator.notifier import planner, service
from escalator.notifier.config import WebhookConfig
from escalator.notifier.main import SPEC
from escalator.notifier.models import Delivery, TicketRow
from escalator.notifier.rules import Rule
from escalator.notifier.templates import Links
from escalator.shared.db import make_engine, make_sessionmaker
from escalator.shared.events import (
    CloudEvent,
    Comment,
    Contact,
    TicketCommented,
    TicketCreated,
    TicketEscalationRequested,
    TicketLinked,
    TicketResolved,
    TicketUpdated,
    utcnow,
)
from escalator.shared.migrations import upgrade
from tests.notifier.helpers import assigned, breached, escalated, notifier_settings, snapshot
from tests.notifier.test_email import RULES
from tests.support import Env

DIRECTORY = planner.Directory(
    links=Links("https://desk.example/t/{ticket_id}", "https://desk.example/survey", None, 7),
    executives=[Contact(name="Dana Exec", email="dana@corp.example")],
    promise_hours={"high": 4})


def story(tag: str) -> list[CloudEvent[Any]]:
    """Two tickets and an incident child, interleaved as one partition would carry
    them: assignment, throttled updates folding into a digest, escalations, a breach,
    a link and a public comment on the incident, a resolution."""
    one, two, child = f"{tag}-one", f"{tag}-two", f"{tag}-child"
    comment = Comment(id=f"{tag}-c", author_type="agent", author="chen", public=True,
                      body="The export service is restored.", created_at=utcnow())
    return [
        snapshot(TicketCreated, one),
        assigned(one),
        breached(one),  # to Alice, who holds it now
        snapshot(TicketUpdated, one, subject="Invoices fail to export (all of them)"),
        snapshot(TicketUpdated, one, severity="critical"),
        snapshot(TicketCreated, two, severity="medium"),
        escalated(one),
        breached(one),  # to Chen, who holds it since the escalation
        snapshot(TicketEscalationRequested, one, kind="executive", requested_by="customer",
                 reason="threatens to cancel"),
        breached(two),
        snapshot(TicketUpdated, one, description="Still broken."),
        snapshot(TicketLinked, child, parent_id=two),
        snapshot(TicketCommented, two, comment=comment),
        snapshot(TicketResolved, one, status="resolved"),
    ]


def _outcome(deliveries: list[Delivery], rows: list[TicketRow], events: list[CloudEvent[Any]],
             tag: str) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
    """Deliveries and projections with what legitimately differs taken out: ids, times,
    the tag in ticket ids."""
    position = {event.id: n for n, event in enumerate(events)}

    def plain(value: Any) -> Any:
        return json.loads(json.dumps(value, default=str).replace(tag, "T"))

    sent = []
    for d in deliveries:
        payload = json.loads(d.payload)
        content = (payload.get("subject"), payload.get("lines"), payload.get("template")
                   ) if d.channel == "email" else payload.get("type")
        sent.append((position[d.about_event_id], d.channel, plain(d.target_id), d.recipient,
                     d.status, plain(content)))
    projected = [plain({c: getattr(r, c) for c in TicketRow.__table__.c.keys()
                        if c not in ("updated_at", "status_at")}) for r in rows]
    return sorted(sent), sorted(projected, key=str)


async def test_a_run_plans_what_one_event_at_a_time_plans(env: Env) -> None:
    settings = notifier_settings(env)
    engine = make_engine(settings)
    try:
        await upgrade(engine, settings, SPEC.migrations)
        sessions = make_sessionmaker(engine)
        async with sessions() as session, session.begin():
            await service.upsert_targets(session, [WebhookConfig(
                id="audit", url="http://127.0.0.1:9/hook",
                events=["ticket.assigned", "ticket.escalated", "sla.breached"])])
            await service.upsert_rules(session, [Rule.model_validate(r) for r in [
                *RULES, {"id": "breach", "events": ["sla.breached"], "recipients": ["assignee"]}]])
        alone, run = story("alone"), story("run")
        async with sessions() as session, session.begin():
            planned_alone = [d for e in alone for d in
                             await planner.plan_deliveries(session, [e], DIRECTORY)]
        async with sessions() as session, session.begin():
            planned_run = await planner.plan_deliveries(session, run, DIRECTORY)
        async with sessions() as session:
            stored = list((await session.scalars(select(Delivery))).all())
            rows = list((await session.scalars(select(TicketRow))).all())

        def of(tag: str) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
            return _outcome([d for d in stored if d.ticket_id.startswith(tag)],
                            [r for r in rows if r.ticket_id.startswith(tag)],
                            alone if tag == "alone" else run, tag)

        assert of("run") == of("alone")
        sent, projected = of("run")
        assert len(planned_run) == len(planned_alone) == len(sent)
        digests = [s for s in sent if s[2].startswith("digest:")]
        assert len(digests) == 1 and len(digests[0][5][1]) == 2, digests  # two lines folded
        assert {s[3] for s in sent} >= {"ana@client.example", "alice@helpdesk.example",
                                       "chen@helpdesk.example",
                                       "dana@corp.example", "carla@helpdesk.example"}
        assert len(projected) == 3
    finally:
        await engine.dispose()
