"""Raw mail normalization on realistic fixtures (no service needed: pure parsing)."""

from __future__ import annotations

import pytest

from escalator.ingest import email_in, textutil
from escalator.shared.problems import Problem
from tests.ingest.helpers import fixture_bytes

DEPARTMENTS = {"billing": "billing", "security@helpdesk.example": "security"}


def parse(raw: bytes, limit: int = 1_000_000) -> email_in.Inbound:
    return email_in.parse(raw, departments=DEPARTMENTS, max_attachment_bytes=limit)


def test_multipart_reply_with_attachment_and_quote() -> None:
    mail = parse(fixture_bytes("email_multipart_reply.eml"))
    assert mail.subject == "Pagamentos não funcionam"  # RFC 2047 base64, "Re:" dropped
    assert mail.customer.name == "João Silva" and mail.customer.email == "joao.silva@acme.example"
    assert mail.description.startswith("Bom dia,") and "fora do ar" in mail.description
    assert "escreveu" not in mail.description and "> Olá" not in mail.description
    assert "Head of Ops" not in mail.description  # signature after "--" stripped
    assert mail.external_id == "<CAJ5x2-orig-0@mail.acme.example>"
    assert mail.thread_refs == ["<CAJ5x2-reply-1@mail.acme.example>",
                                "<CAJ5x2-orig-0@mail.acme.example>"]
    assert mail.language == "pt-BR"
    [attachment] = mail.details["attachments"]
    assert attachment["name"] == "relatorio-erros.pdf" and attachment["size"] == 45
    assert attachment["content_type"] == "application/pdf" and len(attachment["sha256"]) == 64


def test_html_only_windows_1253_to_billing() -> None:
    mail = parse(fixture_bytes("email_html_greek_billing.eml"))
    assert mail.details["html_only"] is True
    assert mail.subject == "Χρέωση" and mail.customer.name == "Νίκος Γεωργίου"
    assert "ακύρωση του συμβολαίου" in mail.description and "<" not in mail.description
    assert (mail.department, mail.recipient) == ("billing", "billing@helpdesk.example")


def test_unknown_charset_degrades_instead_of_failing() -> None:
    mail = parse(fixture_bytes("email_unknown_charset.eml"))
    assert "Perché" in mail.description and "disservizio" in mail.description


@pytest.mark.parametrize(("raw", "field", "status"), [
    (fixture_bytes("email_malformed_multipart.eml"), "body", 422),
    (b"To: support@helpdesk.example\r\nSubject: x\r\n\r\nno sender\r\n", "headers.From", 422),
    (b"From: not-an-address\r\nSubject: x\r\n\r\nbody\r\n", "headers.From", 422),
    (b"From: a@b.example\r\nX-Junk: " + b"a" * 9000 + b"\r\n\r\nbody\r\n", "headers.X-Junk", 431),
    (b"From: a@b.example\r\n" + b"X-H: 1234567890\r\n" * 5000 + b"\r\nbody", "headers", 431),
])
def test_bad_mail_named(raw: bytes, field: str, status: int) -> None:
    with pytest.raises(Problem) as caught:
        parse(raw)
    assert caught.value.status == status
    assert caught.value.extensions["errors"][0]["field"] == field


def test_attachment_limit() -> None:
    with pytest.raises(Problem) as caught:
        parse(fixture_bytes("email_multipart_reply.eml"), limit=10)
    assert caught.value.status == 413
    assert caught.value.extensions["errors"][0]["field"] == "attachments.relatorio-erros.pdf"


@pytest.mark.parametrize(("raw", "stored"), [
    ("Checkout fails.\n\tSince 09:10 UTC.", "Checkout fails.\n\tSince 09:10 UTC."),
    ("Fatura\x00 duplicada\x1b[31m\r\n", "Fatura duplicada[31m"),
    ("zero\u200bwidth and bidi\u202e marks", "zerowidth and bidi marks"),
    ("  Στάλθηκε\u00a0από\u3000o telefone\rdela  ", "Στάλθηκε από o telefone\ndela"),
])
def test_clean_keeps_text_and_layout_drops_control_characters(raw: str, stored: str) -> None:
    assert textutil.clean(raw) == stored
