"""Shipped templates in every language, the English fallback, survey links, the sandbox."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from escalator.notifier import templates
from escalator.notifier.catalog import LANGUAGES, SHIPPED
from escalator.notifier.rules import Person, TicketView, customer_person
from escalator.shared import tokens
from escalator.shared.events import TicketCreated, TicketResolved
from tests.notifier.helpers import ALICE, CUSTOMER, breached, snapshot

SECRET = "survey-secret"
LINKS = templates.Links("https://desk.example/t/{ticket_id}",
                        "https://desk.example/survey/{ticket_id}?token={token}", SECRET, 30)
#: One word each message must contain, per language: proof it is not the English text.
WORDS = {
    ("ticket.created", "en"): "received", ("ticket.created", "pt"): "Recebemos",
    ("ticket.created", "es"): "recibido", ("ticket.created", "it"): "ricevuto",
    ("ticket.created", "el"): "Λάβαμε",
    ("sla.update_due", "en"): "still working", ("sla.update_due", "pt"): "Continuamos",
    ("sla.update_due", "es"): "Seguimos", ("sla.update_due", "it"): "stiamo ancora",
    ("sla.update_due", "el"): "Συνεχίζουμε",
    ("ticket.resolved", "en"): "resolved", ("ticket.resolved", "pt"): "resolvido",
    ("ticket.resolved", "es"): "resuelta", ("ticket.resolved", "it"): "risolta",
    ("ticket.resolved", "el"): "επιλύθηκε",
}


def customer(language: str) -> Person:
    return customer_person(CUSTOMER.model_copy(update={"language": language}), None)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["ticket.created", "sla.update_due", "ticket.resolved"])
def test_customer_templates_in_every_language(kind: str, language: str) -> None:
    event = (snapshot(TicketResolved) if kind == "ticket.resolved"
             else snapshot(TicketCreated) if kind == "ticket.created" else breached())
    view = TicketView(customer=CUSTOMER, subject="Invoices fail to export")
    ctx = templates.context(event, view, customer(language), kind, links=LINKS,
                            promise_hours=4)
    rendered = templates.render({}, [kind], "customer", "email", ctx)
    assert rendered is not None and rendered.language == language
    assert WORDS[(kind, language)] in rendered.body
    assert event.subject in rendered.subject and "\n" not in rendered.subject
    assert "Ana Sousa" in rendered.body and "Invoices fail to export" in rendered.body
    if kind == "ticket.created":
        assert " 4 " in rendered.body  # the first-response promise, in hours
    if kind == "ticket.resolved":
        url = next(w for w in rendered.body.split() if w.startswith("https://"))
        parts = urlsplit(url)
        assert parts.path == f"/survey/{event.subject}"
        token = parse_qs(parts.query)["token"][0]
        assert tokens.verify(SECRET, "survey", event.subject, token)
        assert not tokens.verify(SECRET, "survey", "another-ticket", token)


def test_missing_language_falls_back_to_english_and_overrides_win() -> None:
    event = snapshot(TicketCreated)
    ctx = templates.context(event, TicketView(), customer("fr"), "ticket.created", links=LINKS,
                            promise_hours=8)
    rendered = templates.render({}, ["ticket.created"], "customer", "email", ctx)
    assert rendered is not None and rendered.language == "en"
    assert "We received your request" in rendered.body and "8 hours" in rendered.body
    edited = {("ticket.created", "customer", "email", "fr"):
              ("Bonjour", "Merci {{ recipient_name }}")}
    rendered = templates.render(edited, ["ticket.created"], "customer", "email", ctx)
    assert rendered is not None and rendered.body == "Merci Ana Sousa"
    assert rendered.template == "ticket.created/customer/email/fr"


def test_internal_message_carries_link_severity_level_clock_and_reason() -> None:
    event = breached()
    view = TicketView(customer=CUSTOMER, assignee=ALICE, level=1)
    person = Person("supervisor", "Bea Boss", "bea@x.example", "en", None, True)
    ctx = templates.context(event, view, person, "sla.breached", links=LINKS, promise_hours=4)
    rendered = templates.render({}, ["sla.breached"], "internal", "email", ctx)
    assert rendered is not None
    assert rendered.subject == f"[HIGH] {event.subject}: sla.breached"
    body = rendered.body
    assert f"https://desk.example/t/{event.subject}" in body
    assert "Severity: high" in body and "Clock: first_response" in body
    assert "Held by: Alice Moreau" in body and "You are receiving this as supervisor" in body


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{{ nonsense }}", "'nonsense' is undefined"),
    ("{% for x in %}", "line 1"),
    ("{{ recipient_name.__init__.__globals__ }}", "unsafe"),
])
def test_validation_refuses_unsafe_unknown_and_broken_templates(source: str, expected: str
                                                                ) -> None:
    message = templates.validate("body", source)
    assert message is not None and message.startswith("body: ") and expected in message


def test_every_shipped_template_validates() -> None:
    for key, (subject, body) in SHIPPED.items():
        assert templates.validate("subject", subject) is None, key
        assert templates.validate("body", body) is None, key
