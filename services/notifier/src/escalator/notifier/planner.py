"""From a run of events to their pending deliveries, inside the consumer's transaction.

The consumer hands over every run of consecutive events of a poll at once, whatever
their types; a run costs a few statements (its projection rows read, then written, and
its deliveries inserted), not two per event, which was most of planning's CPU. Each
event is still planned on its ticket as the events before it left it.

Two sources of deliveries: webhook targets subscribed to the event type (the original
behaviour, kept), and rules, which pick people by role (email) or a webhook target. The
unique (event, channel, target) key makes re-planning a redelivered event a no-op, and
makes a person named by two rules, or a customer behind two linked tickets, hear once.

The projection also keeps the ticket's status and when it took it: the dispatcher
cancels, at send time, messages about work on a ticket resolved or closed after them
(``service.MOOT_AFTER_RESOLUTION``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.notifier import digest, messages, templates
from escalator.notifier.catalog import Key
from escalator.notifier.models import (
    Delivery,
    DeliveryStatus,
    RuleRow,
    TemplateRow,
    TicketRow,
    WebhookTarget,
)
from escalator.notifier.rules import Person, Rule, TicketView, customer_person, facts, matches
from escalator.notifier.rules import resolve as resolve_role
from escalator.notifier.schedule import WorkingHours, is_urgent, next_working_time
from escalator.shared.db import conflict_insert, per_key, per_transaction
from escalator.shared.events import (
    CloudEvent,
    Contact,
    Customer,
    Holder,
    TicketAssigned,
    TicketCommented,
    TicketEscalated,
    TicketSnapshot,
    utcnow,
)

WEBHOOK = "webhook"
EMAIL = "email"

_deliveries = cast(Table, Delivery.__table__)
_tickets = cast(Table, TicketRow.__table__)


@dataclass
class Directory:
    """Start-up configuration the planner needs: people named by config, the promise
    quoted to customers, and how links are built."""

    links: templates.Links
    executives: list[Contact] = field(default_factory=list)
    watchers: list[Contact] = field(default_factory=list)
    promise_hours: dict[str, float] = field(default_factory=dict)
    working_hours: WorkingHours = field(default_factory=WorkingHours)


def _projected(event: CloudEvent[Any]) -> dict[str, Any]:
    """The projection's columns the event states (none for SLA events and the like)."""
    data = event.data
    values: dict[str, Any] = {}
    if isinstance(data, TicketSnapshot):
        values = {"subject": data.subject[:500], "customer": data.customer.model_dump(mode="json"),
                  "language": data.language, "severity": str(data.severity),
                  "executive": data.executive, "parent_id": data.parent_id,
                  "status": str(data.status), "status_at": event.time}
    elif isinstance(data, TicketAssigned):
        values = {"severity": str(data.severity), "level": data.level,
                  "assignee": _dump(data.assignee)}
        if data.supervisor is not None:
            values["supervisor"] = _dump(data.supervisor)
    elif isinstance(data, TicketEscalated):
        values = {"severity": str(data.severity), "level": data.to_level,
                  "assignee": _dump(data.to_assignee)}
        if data.supervisor is not None:
            values["supervisor"] = _dump(data.supervisor)
    return values


@functools.cache
def _projection_query(dialect: str) -> Any:
    """The projection rows of a run's tickets (``tickets``), built once: building it and
    its cache key anew cost about as much CPU as its round trip."""
    rows, source = per_key(select(_tickets), _tickets.c.ticket_id, "tickets", dialect)
    return select(rows).select_from(source)


async def project(session: AsyncSession, events: list[CloudEvent[Any]]
                  ) -> list[dict[str, Any] | None]:
    """Fold what each event says about its ticket into the projection; returns, per
    event, its ticket's row as that event left it (None: a ticket never heard of).

    A few statements for a run of events, not two per event: the run's rows are read at
    once, folded in memory in order (each event's view is the row after it), and each
    ticket written once (one upsert per set of columns), with only the columns its
    events stated, as the upsert per event did (a column no event stated keeps what
    another writer put there). Core statements on the table: the ORM's identity map is
    not refreshed by them, so ORM reads of the projection in the same transaction ask
    for ``populate_existing``."""
    dialect = session.get_bind().dialect.name
    ids = list(dict.fromkeys(event.subject for event in events))
    rows: dict[str, dict[str, Any]] = {row.ticket_id: dict(row._mapping) for row in (
        await session.execute(_projection_query(dialect), {"tickets": ids}))}
    stated: dict[str, dict[str, Any]] = {}
    views: list[dict[str, Any] | None] = []
    for event in events:
        values = _projected(event)
        if values:
            values["updated_at"] = utcnow()
            row = rows.setdefault(event.subject, dict.fromkeys(_tickets.c.keys()) | {
                "ticket_id": event.subject, "executive": False})
            row.update(values)
            stated.setdefault(event.subject, {}).update(values)
        views.append(dict(rows[event.subject]) if event.subject in rows else None)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for ticket_id, values in stated.items():
        by_columns.setdefault(tuple(sorted(values)), []).append(
            {"ticket_id": ticket_id, "executive": False, **values})
    for columns, params in by_columns.items():
        await session.execute(_upsert(dialect, columns), params)
    return views


@functools.cache
def _upsert(dialect: str, columns: tuple[str, ...]) -> Any:
    """The projection's upsert of ``columns``, built once per set of columns: building
    the statement for every event (its values, its ON CONFLICT clause) cost more CPU
    than running it."""
    insert = conflict_insert(dialect)(_tickets).values(
        {name: bindparam(name) for name in dict.fromkeys(("ticket_id", "executive", *columns))})
    return insert.on_conflict_do_update(index_elements=[_tickets.c.ticket_id],
                                        set_={name: insert.excluded[name] for name in columns})


@functools.cache
def _insert_deliveries(dialect: str) -> Any:
    """Deliveries not stored yet; an (event, channel, target) already there is skipped."""
    return (conflict_insert(dialect)(_deliveries)
            .on_conflict_do_nothing(index_elements=["about_event_id", "channel", "target_id"])
            .returning(_deliveries.c.id))


def _dump(holder: Holder | None) -> dict[str, Any] | None:
    return holder.model_dump(mode="json") if holder is not None else None


def view_of(row: Mapping[str, Any] | None) -> TicketView:
    if row is None:
        return TicketView()
    return TicketView(
        customer=Customer.model_validate(row["customer"]) if row["customer"] else None,
        language=row["language"], severity=row["severity"], executive=row["executive"],
        subject=row["subject"], level=row["level"],
        assignee=Holder.model_validate(row["assignee"]) if row["assignee"] else None,
        supervisor=Holder.model_validate(row["supervisor"]) if row["supervisor"] else None,
    )


async def load_rules(session: AsyncSession) -> list[Rule]:
    rows = (await session.scalars(select(RuleRow).order_by(RuleRow.id))).all()
    return [Rule.model_validate(r.definition) for r in rows]


async def load_overrides(session: AsyncSession) -> dict[Key, tuple[str | None, str]]:
    rows = (await session.scalars(select(TemplateRow))).all()
    return {(r.event, r.audience, r.channel, r.language): (r.subject, r.body) for r in rows}


_CONFIGURATION = "notifier.configuration"
Configuration = tuple[dict[str, WebhookTarget], list[Rule], dict[Key, tuple[str | None, str]]]


async def _configuration(session: AsyncSession) -> Configuration:
    """Enabled webhook targets, rules and template overrides, read once per transaction
    (``per_transaction``): re-reading (and re-validating) them for every event was a
    third of planning's CPU."""

    async def load() -> Configuration:
        targets = {t.id: t for t in (await session.scalars(select(WebhookTarget))).all()
                   if t.enabled}
        return targets, await load_rules(session), await load_overrides(session)

    return await per_transaction(session, _CONFIGURATION, load)


@dataclass
class _Plan:
    event: CloudEvent[Any]
    planned: dict[tuple[str, str], Delivery] = field(default_factory=dict)

    def add(self, channel: str, target_id: str, recipient: str, ticket_id: str,
            payload: str, delivery_id: str, due: datetime | None = None) -> None:
        if (channel, target_id) in self.planned:
            return
        now = utcnow()
        self.planned[(channel, target_id)] = Delivery(
            id=delivery_id, ticket_id=ticket_id, about_event_id=self.event.id,
            about_event_type=self.event.type, about_event_time=self.event.time,
            channel=channel, target_id=target_id,
            recipient=recipient, payload=payload, status=DeliveryStatus.pending.value,
            attempts=0, next_attempt_at=due or now, created_at=now)


def _person_key(email: str) -> str:
    email = email.strip().lower()
    # Room for the digest prefix within the 100-character column.
    return email if len(email) <= 90 else "sha256:" + hashlib.sha256(email.encode()).hexdigest()


def webhook_payload(target: WebhookTarget, delivery_id: str, event: CloudEvent[Any]) -> str:
    if target.format == "slack":
        text = messages.summary(event)
        return json.dumps({"text": text, "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}]},
            separators=(",", ":"), ensure_ascii=False)
    return messages.webhook_body(delivery_id, event)


async def plan_deliveries(session: AsyncSession, events: list[CloudEvent[Any]],
                          directory: Directory | None = None) -> list[Delivery]:
    """Project a run of events, then store one pending delivery per (recipient, channel)
    of each; returns those stored (not those a redelivered event had stored before)."""
    views = await project(session, events)
    targets, rules, overrides = await _configuration(session)
    store = _Store(session)
    for event, row in zip(events, views, strict=True):
        plan = _Plan(event)
        for target in targets.values():
            if event.type in target.events:
                delivery_id = str(uuid.uuid4())
                plan.add(WEBHOOK, target.id, target.url, event.subject,
                         webhook_payload(target, delivery_id, event), delivery_id)
        if rules and directory is not None:
            await _plan_rules(session, store, plan, rules, targets, overrides, directory, row)
        store.waiting += plan.planned.values()
    return await store.flush()


@dataclass
class _Store:
    """The run's planned deliveries, inserted with one statement; the ones the database
    already holds (a redelivered event, an (event, channel, target) stored before) are
    skipped by ON CONFLICT on that unique key, not by a savepoint and a flush each."""

    session: AsyncSession
    waiting: list[Delivery] = field(default_factory=list)
    stored: list[Delivery] = field(default_factory=list)

    async def flush(self) -> list[Delivery]:
        """Insert what waits; returns everything this run stored so far. Throttling
        flushes before it looks for recent deliveries, so it sees the run's own."""
        planned, self.waiting = self.waiting, []
        if planned:
            columns = _deliveries.columns
            rows = [{column.key: getattr(delivery, column.key) for column in columns}
                    for delivery in planned]
            inserted = set((await self.session.scalars(
                _insert_deliveries(self.session.get_bind().dialect.name), rows)).all())
            self.stored += [delivery for delivery in planned if delivery.id in inserted]
        return self.stored


async def _plan_rules(session: AsyncSession, store: _Store, plan: _Plan, rules: list[Rule],
                      targets: dict[str, WebhookTarget],
                      overrides: dict[Key, tuple[str | None, str]], directory: Directory,
                      row: Mapping[str, Any] | None) -> None:
    event = plan.event
    view = view_of(row)
    children: list[TicketRow] = []
    if isinstance(event.data, TicketCommented) and event.data.comment.public:
        children = list((await session.scalars(
            select(TicketRow).where(TicketRow.parent_id == event.subject)
            .execution_options(populate_existing=True))).all())
    f = facts(event, view, is_parent=bool(children))
    kinds = sorted(f.kinds - {event.type}) + [event.type]
    for rule in rules:
        if not matches(rule, f):
            continue
        kind = next(k for k in kinds if k in rule.events)
        if rule.channel == WEBHOOK:
            target = targets.get(rule.target or "")
            if target is not None:
                delivery_id = str(uuid.uuid4())
                plan.add(WEBHOOK, target.id, target.url, event.subject,
                         webhook_payload(target, delivery_id, event), delivery_id)
            continue
        for person, ticket_id in _people(rule, event, view, children, kind, directory):
            await _plan_email(session, store, plan, overrides, person, ticket_id, kind,
                              kinds, view, directory, rule.throttle_minutes)


def _people(rule: Rule, event: CloudEvent[Any], view: TicketView, children: list[TicketRow],
            kind: str, directory: Directory) -> list[tuple[Person, str]]:
    people: list[tuple[Person, str]] = []
    for role in rule.recipients:
        for person in resolve_role(role, event, view, executives=directory.executives,
                                   watchers=directory.watchers):
            people.append((person, event.subject))
        if role == "customer" and kind == "incident_update":
            # Incident broadcast: every linked ticket's customer hears of the update.
            for child in children:
                if child.customer:
                    customer = Customer.model_validate(child.customer)
                    people.append((customer_person(customer, child.language), child.ticket_id))
    return people


async def _plan_email(session: AsyncSession, store: _Store, plan: _Plan,
                      overrides: dict[Key, tuple[str | None, str]], person: Person,
                      ticket_id: str, kind: str, kinds: list[str], view: TicketView,
                      directory: Directory, throttle_minutes: int | None) -> None:
    target_id = _person_key(person.email)
    if (EMAIL, target_id) in plan.planned:
        return
    severity = str(getattr(plan.event.data, "severity", None) or view.severity or "")
    ctx = templates.context(plan.event, view, person, kind, links=directory.links,
                            promise_hours=directory.promise_hours.get(severity))
    audience = "internal" if person.internal else "customer"
    ordered = [kind, *[k for k in kinds if k != kind]]
    rendered = templates.render(overrides, ordered, audience, EMAIL, ctx)
    if rendered is None:
        return
    delivery_id = str(uuid.uuid4())
    message: dict[str, object] = {
        "to": person.email, "name": person.name, "role": person.role,
        "language": rendered.language, "template": rendered.template,
        "subject": rendered.subject, "body": rendered.body, "timezone": person.timezone,
    }
    if throttle_minutes is not None:
        await store.flush()
        folded = await digest.fold(
            session, channel=EMAIL, target_id=target_id, ticket_id=ticket_id,
            window=timedelta(minutes=throttle_minutes), line=messages.summary(plan.event),
            subject=rendered.subject, payload=message, about_event_id=plan.event.id,
            about_event_type=plan.event.type)
        if folded is True:
            return
        if isinstance(folded, Delivery):
            plan.planned[(EMAIL, folded.target_id)] = folded
            return
    payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    due = None
    if person.internal and not is_urgent(set(kinds), severity):
        due = next_working_time(utcnow(), person.timezone, directory.working_hours)
    plan.add(EMAIL, target_id, person.email, ticket_id, payload, delivery_id, due)
