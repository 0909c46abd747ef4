"""Rules to people over real SMTP: acknowledgement, assignment, executive escalation,
incident broadcast, resolution with the survey link, and templates edited over REST.

One notifier per test (a consumer-group join costs seconds); each scenario uses its own
tickets, so they run side by side.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from escalator.notifier.main import SPEC
from escalator.shared import tokens
from escalator.shared.events import (
    Comment,
    Contact,
    Customer,
    TicketCommented,
    TicketCreated,
    TicketEscalationRequested,
    TicketLinked,
    TicketResolved,
    TicketUpdated,
    utcnow,
)
from tests.notifier.helpers import (
    ALICE,
    CHEN,
    CUSTOMER,
    Mailbox,
    assigned,
    new_ticket_id,
    notifier_settings,
    publish,
    snapshot,
)
from tests.support import Env, RunningService, running, wait_until

SURVEY_SECRET = "survey-secret-for-tests"
RULES = [
    {"id": "ack", "events": ["ticket.created"], "recipients": ["customer"]},
    {"id": "resolution", "events": ["ticket.resolved"], "recipients": ["customer"]},
    {"id": "assignment", "events": ["ticket.assigned"],
     "recipients": ["assignee", "previous_assignee"]},
    {"id": "execs", "events": ["executive_escalation"],
     "recipients": ["executives", "account_executive"]},
    {"id": "incident", "events": ["incident_update", "ticket.linked"], "recipients": ["customer"]},
    {"id": "csm-throttled", "events": ["ticket.updated"], "recipients": ["csm"],
     "throttle_minutes": 60},
    {"id": "gold-only", "events": ["ticket.created"], "tiers": ["platinum"],
     "recipients": ["csm"]},
]


def customer(email: str, language: str | None) -> Customer:
    return CUSTOMER.model_copy(update={"email": email, "language": language})


async def mail(box: Mailbox, address: str, count: int = 1) -> list[EmailMessage]:
    async def arrived() -> list[EmailMessage] | None:
        found = box.to(address)
        return found if len(found) >= count else None

    result: list[EmailMessage] = await wait_until(arrived, message=f"no mail for {address}")
    return result


async def email_deliveries(svc: RunningService, ticket_id: str, count: int
                           ) -> list[dict[str, Any]]:
    async def done() -> list[dict[str, Any]] | None:
        items = (await svc.client.get("/v1/deliveries", params={"ticket_id": ticket_id})
                 ).json()["items"]
        sent = [d for d in items if d["channel"] == "email" and d["status"] == "sent"]
        return sent if len(sent) >= count else None

    result: list[dict[str, Any]] = await wait_until(done, message=f"{ticket_id} not mailed")
    return result


async def one(box: Mailbox, address: str, contains: str) -> EmailMessage:
    """Wait for the message to ``address`` whose subject or body contains ``contains``."""

    def matching() -> list[EmailMessage]:
        return [m for m in box.to(address) if contains in str(m["Subject"]) + text(m)]

    await wait_until(matching, message=f"no mail for {address} with {contains!r}")
    [message] = matching()
    return message


def text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def test_people_hear_in_their_language_once(env: Env, mailbox: Mailbox) -> None:
    config = env.tmp_path / "escalator.yaml"
    config.write_text(yaml.safe_dump({"notifier": {
        "rules": RULES, "executives": [{"name": "Dana Exec", "email": "dana@corp.example"}],
        "promise_hours": {"high": 4}}}, allow_unicode=True))
    settings = notifier_settings(env, config_file=Path(config), smtp_host="127.0.0.1",
                                 smtp_port=mailbox.port, survey_secret=SURVEY_SECRET,
                                 smtp_from="Escalator <desk@helpdesk.example>")
    created = snapshot(TicketCreated)
    ticket = created.subject
    moved = assigned(ticket, assignee=CHEN, previous_assignee=ALICE)
    executive = snapshot(TicketEscalationRequested, ticket, kind="executive",
                         requested_by="customer", reason="threatens to cancel")
    greek = snapshot(TicketResolved, customer=customer("eleni@client.example", "el"))
    parent = new_ticket_id()
    children = {"bob@client.example": "es", "carla@client.example": "it",
                "ana@client.example": "pt"}  # ana's second ticket: she still hears once
    links = [snapshot(TicketLinked, parent_id=parent, customer=customer(email, lang))
             for email, lang in children.items()]
    comment = Comment(id="c1", author_type="agent", author="chen", public=True,
                      body="The export service is restored.", created_at=utcnow())
    update = snapshot(TicketCommented, parent, comment=comment,
                      customer=customer("ops@client.example", "en"))

    async with running(SPEC, settings) as svc:
        for event in (created, created, moved, executive, greek, *links):
            await publish(env, event)
        ack = await one(mailbox, "ana@client.example", "Recebemos")
        assert ack["Subject"] == f"[{ticket}] Recebemos o seu pedido"
        assert ack["Content-Language"] == "pt" and "desk@helpdesk.example" in str(ack["From"])
        assert "responderemos dentro de 4 horas" in text(ack)
        assert ack["X-Escalator-Ticket"] == ticket

        for holder in (CHEN, ALICE):
            [note] = await mail(mailbox, holder.email)
            assert note["Subject"] == f"[HIGH] {ticket}: ticket.assigned"
            role = "assignee" if holder is CHEN else "previous_assignee"
            assert f"You are receiving this as {role}" in text(note)
            assert "Why: first available agent of support-l1" in text(note)
        for person in ("dana@corp.example", "aaron@helpdesk.example"):
            [alert] = await mail(mailbox, person)
            assert "executive_escalation" in alert["Subject"]

        [resolution] = await mail(mailbox, "eleni@client.example")
        assert resolution["Content-Language"] == "el"
        assert resolution["Subject"] == f"[{greek.subject}] Το αίτημά σας επιλύθηκε"
        url = next(w for w in text(resolution).split() if w.startswith("http"))
        token = parse_qs(urlsplit(url).query)["token"][0]
        assert tokens.verify(SURVEY_SECRET, "survey", greek.subject, token)

        # Every child is linked (each customer was told) before the incident update.
        for link in links:
            await email_deliveries(svc, link.subject, 1)
        await publish(env, update)
        for email, language in children.items():
            news = await one(mailbox, email, "export service is restored")
            assert news["Content-Language"] == language
        await one(mailbox, "ops@client.example", "export service is restored")

        # Rejected template: 422 naming the field, nothing stored.
        path = "/v1/templates/ticket.created/customer/email/fr"
        bad = await svc.client.put(path, json={"subject": "Bonjour", "body": "{{ oops }"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body"
        listed = (await svc.client.get("/v1/templates")).json()["items"]
        assert all(t["language"] != "fr" for t in listed)
        assert len([t for t in listed if t["audience"] == "customer"]) == 30
        good = await svc.client.put(path, json={"subject": "[{{ ticket_id }}] Bien reçu",
                                                "body": "Merci {{ recipient_name }}."})
        assert good.status_code == 200, good.text
        french = snapshot(TicketCreated, customer=customer("remy@client.example", "fr"))
        await publish(env, french)
        [merci] = await mail(mailbox, "remy@client.example")
        assert merci["Subject"] == f"[{french.subject}] Bien reçu"
        assert text(merci).strip() == "Merci Ana Sousa."
        assert (await svc.client.delete(path)).status_code == 204
        assert (await svc.client.delete(path)).status_code == 404

        # Throttling: the CSM hears of the first update; the next two fold into a digest
        # due an hour after the first message.
        zoe = CUSTOMER.model_copy(update={"csm": Contact(name="Zoe", email="zoe@desk.example")})
        updates = [snapshot(TicketUpdated, greek.subject + "-u", customer=zoe) for _ in range(3)]
        await publish(env, updates[0])
        await one(mailbox, "zoe@desk.example", updates[0].subject)
        for event in updates[1:]:
            await publish(env, event)

        async def digested() -> dict[str, Any] | None:
            items = (await svc.client.get("/v1/deliveries",
                                          params={"ticket_id": updates[0].subject})).json()
            waiting = [d for d in items["items"] if d["target_id"].startswith("digest:")]
            return waiting[0] if waiting and len(waiting[0]["payload"]["lines"]) == 2 else None

        pending = await wait_until(digested, message="no digest")
        assert pending["status"] == "pending" and pending["recipient"] == "zoe@desk.example"
        assert pending["payload"]["subject"] == f"2 updates on {updates[0].subject}"
        assert len(mailbox.to("zoe@desk.example")) == 1

        [logged] = await email_deliveries(svc, greek.subject, 1)
        assert logged["recipient"] == "eleni@client.example" and logged["attempts"] == 1
        assert logged["payload"]["language"] == "el"

        # The log by recipient (in any case) and channel.
        by_person = (await svc.client.get("/v1/deliveries", params={
            "recipient": " Eleni@Client.example", "channel": "email"})).json()["items"]
        assert [d["id"] for d in by_person] == [logged["id"]]
        no_webhooks = (await svc.client.get("/v1/deliveries", params={
            "recipient": "eleni@client.example", "channel": "webhook"})).json()["items"]
        assert no_webhooks == []

    # The redelivered creation and the address behind two tickets yielded one message each:
    # acknowledgement, "linked to an incident", incident update.
    assert len(mailbox.to("ana@client.example")) == 3
    assert mailbox.to("carla@helpdesk.example") == []  # the platinum-only rule never matched
