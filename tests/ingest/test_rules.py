"""Severity, category and executive rules; keyword rules in all five shipped languages."""

from __future__ import annotations

import pytest

from escalator.ingest.rules import Facts, Rule, decide, detect_language, fold
from escalator.shared.events import Severity

CASES = [
    # (language, text, concern, severity, executive)
    ("en", "Your platform has been DOWN for an hour, total outage!", "outage", "critical", False),
    ("pt", "O sistema está fora do ar desde cedo.", "outage", "critical", False),
    ("es", "Otra caída del servicio en producción.", "outage", "critical", False),
    ("it", "Grave disservizio su tutti i negozi.", "outage", "critical", False),
    ("el", "Έχουμε διακοπή λειτουργίας σε όλα τα καταστήματα.", "outage", "critical", False),
    ("en", "After the migration we had data loss on 3 projects.", "data_loss", "critical", False),
    ("pt", "Houve perda de dados após a atualização.", "data_loss", "critical", False),
    ("es", "Tenemos pérdida de datos en la cuenta.", "data_loss", "critical", False),
    ("it", "Abbiamo una perdita di dati nel CRM.", "data_loss", "critical", False),
    ("el", "Υπάρχει απώλεια δεδομένων στην αναφορά.", "data_loss", "critical", False),
    ("en", "Fix it or I will cancel my contract.", "cancellation", "high", True),
    ("pt", "Quero cancelar meu contrato hoje.", "cancellation", "high", True),
    ("es", "Vamos a cancelar el contrato si sigue así.", "cancellation", "high", True),
    ("it", "Vogliamo disdire il contratto.", "cancellation", "high", True),
    ("el", "Ζητώ την ακύρωση του συμβολαίου.", "cancellation", "high", True),
    ("en", "Our lawyer will be in touch.", "legal", "high", True),
    ("pt", "Vamos entrar com uma ação judicial.", "legal", "high", True),
    ("es", "Nuestro abogado ya tiene el caso.", "legal", "high", True),
    ("it", "Siamo pronti ad andare per vie legali.", "legal", "high", True),
    ("el", "Θα προχωρήσουμε σε νομικά μέτρα.", "legal", "high", True),
    ("en", "I want to speak to a manager now.", "manager", "high", False),
    ("pt", "Quero falar com o gerente.", "manager", "high", False),
    ("es", "Necesito hablar con un supervisor.", "manager", "high", False),
    ("it", "Voglio parlare con un responsabile.", "manager", "high", False),
    ("el", "Θέλω να μιλήσω με τον προϊστάμενο.", "manager", "high", False),
]


def facts(text: str, **overrides: object) -> Facts:
    values: dict[str, object] = {"channel": "email", "text": text, "category": None,
                                 "recipient": None, "tier": "standard"}
    values.update(overrides)
    return Facts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("language", "text", "concern", "severity", "executive"), CASES)
def test_shipped_keywords(language: str, text: str, concern: str, severity: str,
                          executive: bool) -> None:
    decision = decide(facts(text), None, [])
    assert decision.severity == Severity(severity)
    assert decision.reason.startswith(f"keyword:{concern}:{language}:")
    assert decision.executive is executive
    assert decision.escalation is (concern == "manager")


def test_accents_optional_and_whole_words_only() -> None:
    assert decide(facts("perdida de datos en la cuenta"), None, []).severity == Severity.critical
    assert decide(facts("ΑΠΩΛΕΙΑ ΔΕΔΟΜΕΝΩΝ"), None, []).severity == Severity.critical
    calm = decide(facts("Download of the sueyou.pdf invoice is slow"), None, [])
    assert (calm.severity, calm.reason) == (Severity.medium, "default")


def test_explicit_then_rules_then_keywords_then_default() -> None:
    rules = [Rule(id="vip-billing", match={"category": ["billing"], "tier": ["enterprise"]},
                  severity="high", executive=True),
             Rule(id="security-inbox", match={"recipient": ["security@helpdesk.example"]},
                  severity="critical", category="security")]
    explicit = decide(facts("outage"), Severity.low, rules)
    assert (explicit.severity, explicit.reason) == (Severity.low, "explicit")
    vip = decide(facts("invoice", category="billing", tier="enterprise"), None, rules)
    assert (vip.severity, vip.reason, vip.executive) == (Severity.high, "rule:vip-billing", True)
    sec = decide(facts("phishing", recipient="Security@helpdesk.example"), None, rules)
    assert (sec.severity, sec.category) == (Severity.critical, "security")
    # A legal threat is executive even when the sender set the severity.
    assert decide(facts("our lawyer"), Severity.low, rules).executive is True
    assert decide(facts("hello"), None, rules, default=Severity.low).reason == "default"


def test_language_detection_and_fold() -> None:
    assert detect_language("Καλησπέρα, δεν λειτουργεί τίποτα") == "el"
    assert detect_language("Por favor, o sistema não está funcionando com o nosso") == "pt"
    assert detect_language("ok") is None
    assert fold("  Pérdida   DE datos ") == "perdida de datos"


def test_language_is_guessed_from_the_opening_of_a_long_message() -> None:
    """What the customer wrote comes first; a pasted log or forwarded English thread
    after it must neither outvote it nor cost CPU per character of a 100 KB body."""
    opening = "Por favor, o sistema não está funcionando com o nosso cartão. " * 40
    pasted = "ERROR the export is not ready and the worker is down, please retry. " * 1500
    assert len(opening) >= 2_000  # rules.LANGUAGE_SAMPLE
    assert detect_language(opening + pasted) == "pt"
    assert detect_language(pasted + opening) == "en"
