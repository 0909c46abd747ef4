"""Severity, category and executive rules: the explicit value first, then the first rule
that matches (YAML, in file order), then the shipped keyword rules, then the default.

Keyword matching folds case and accents (``pérdida`` == ``perdida``, ``απώλεια`` ==
``απωλεια``) and matches whole words, so customers who type without accents are still
understood and ``down`` does not match ``download``. The rule that decided is recorded
on the ticket as ``severity_reason`` so an agent can see why a ticket is urgent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from escalator.shared.events import Severity


class RuleMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: list[str] = []
    category: list[str] = []
    recipient: list[str] = Field(default=[], description="Email recipient addresses")
    tier: list[str] = []
    keywords: list[str] = []


class Rule(BaseModel):
    """One YAML rule: every given criterion must match (keywords: any one of them)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100)
    match: RuleMatch = RuleMatch()
    severity: Severity | None = None
    category: str | None = None
    executive: bool = False
    escalation: bool = Field(default=False, description="Ask for a hierarchical escalation")


#: Shipped keyword rules, per concern and language. Phrases are matched accent-folded.
BUILTIN: dict[str, dict[str, list[str]]] = {
    "outage": {
        "en": ["outage", "service is down", "site is down", "system is down", "is down for",
               "completely down"],
        "pt": ["fora do ar", "indisponivel", "queda do sistema", "sistema caiu"],
        "es": ["caida del servicio", "servicio caido", "sistema caido",
               "interrupcion del servicio"],
        "it": ["disservizio", "servizio non disponibile", "sistema non raggiungibile",
               "servizio fuori uso"],
        "el": ["διακοπη λειτουργιας", "εκτος λειτουργιας", "η υπηρεσια δεν λειτουργει"],
    },
    "data_loss": {
        "en": ["data loss", "lost data", "lost all our data", "data was deleted"],
        "pt": ["perda de dados", "perdemos os dados", "dados foram apagados"],
        "es": ["perdida de datos", "perdimos los datos", "datos borrados"],
        "it": ["perdita di dati", "dati persi", "abbiamo perso i dati"],
        "el": ["απωλεια δεδομενων", "χασαμε τα δεδομενα"],
    },
    "cancellation": {
        "en": ["cancel my contract", "cancel our contract", "terminate our contract",
               "terminate the contract", "cancel my subscription"],
        "pt": ["cancelar meu contrato", "cancelar o contrato", "cancelar nosso contrato",
               "rescindir o contrato"],
        "es": ["cancelar mi contrato", "cancelar el contrato", "cancelar nuestro contrato",
               "rescindir el contrato"],
        "it": ["disdire il contratto", "annullare il contratto", "recedere dal contratto",
               "disdetta del contratto"],
        "el": ["ακυρωση του συμβολαιου", "ακυρωσω το συμβολαιο", "καταγγελια της συμβασης",
               "λυση του συμβολαιου"],
    },
    "legal": {
        "en": ["lawyer", "attorney", "legal action", "lawsuit", "sue you", "take you to court"],
        "pt": ["advogado", "acao judicial", "processo judicial", "processar voces"],
        "es": ["abogado", "acciones legales", "demanda judicial", "denunciarlos"],
        "it": ["avvocato", "azione legale", "vie legali", "denuncia"],
        "el": ["δικηγορο", "νομικα μετρα", "αγωγη", "μηνυση"],
    },
    "manager": {
        "en": ["speak to a manager", "talk to a manager", "speak to your manager",
               "speak to a supervisor"],
        "pt": ["falar com um gerente", "falar com o gerente", "falar com o supervisor"],
        "es": ["hablar con un gerente", "hablar con el gerente", "hablar con un supervisor",
               "hablar con el encargado"],
        "it": ["parlare con un responsabile", "parlare con il responsabile",
               "parlare con un manager"],
        "el": ["να μιλησω με τον προισταμενο", "να μιλησω με εναν διευθυντη",
               "να μιλησω με τον υπευθυνο"],
    },
}

#: What each shipped concern decides.
BUILTIN_EFFECT: dict[str, tuple[Severity, bool]] = {
    "outage": (Severity.critical, False),
    "data_loss": (Severity.critical, False),
    "cancellation": (Severity.high, True),
    "legal": (Severity.high, True),
    "manager": (Severity.high, False),
}


def fold(text: str) -> str:
    """Lower-case without accents, whitespace collapsed: what keyword rules compare."""
    if text.isascii():  # nothing to decompose: the same result, without a pass per character
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.replace("ς", "σ").split())


@lru_cache(maxsize=1024)
def _pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(fold(phrase)) + r"(?!\w)")


@lru_cache(maxsize=256)
def _any_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(fold(phrase)) for phrase in phrases)
    return re.compile(r"(?<!\w)(?:" + alternatives + r")(?!\w)")


def find_phrase(folded: str, phrases: list[str]) -> str | None:
    """The first of ``phrases`` (in list order) that ``folded`` contains as whole words.

    One combined search answers the common case, no phrase at all, in a single scan.
    """
    if not phrases or not _any_pattern(tuple(phrases)).search(folded):
        return None
    for phrase in phrases:
        if _pattern(phrase).search(folded):
            return phrase
    return None


@dataclass(frozen=True)
class Facts:
    """What rules can look at."""

    channel: str
    text: str
    category: str | None
    recipient: str | None
    tier: str


@dataclass(frozen=True)
class Decision:
    severity: Severity
    reason: str
    category: str | None
    executive: bool
    escalation: bool
    language: str | None = None
    concerns: tuple[str, ...] = ()


#: Every shipped phrase, to rule out the common text that raises no concern in one scan.
_ALL_BUILTIN = tuple(p for by_language in BUILTIN.values() for phrases in by_language.values()
                     for p in phrases)


def builtin_concerns(folded: str) -> list[tuple[str, str, str]]:
    """Every shipped concern the text raises, as (concern, language, phrase)."""
    found: list[tuple[str, str, str]] = []
    if not _any_pattern(_ALL_BUILTIN).search(folded):
        return found
    for concern, by_language in BUILTIN.items():
        for language, phrases in by_language.items():
            phrase = find_phrase(folded, phrases)
            if phrase is not None:
                found.append((concern, language, phrase))
                break
    return found


def decide(facts: Facts, explicit: Severity | None, rules: list[Rule], *,
           default: Severity = Severity.medium, builtin: bool = True) -> Decision:
    """Severity, the reason, category and the executive flag for one inbound event.

    The executive flag and the escalation request come from any matching rule even
    when an explicit severity wins, because a legal threat stays one at any severity.
    """
    folded = fold(facts.text)
    severity, reason, category = explicit, "explicit" if explicit else None, facts.category
    executive = escalation = False
    for rule in rules:
        if not _matches(rule.match, facts, folded):
            continue
        executive = executive or rule.executive
        escalation = escalation or rule.escalation
        if severity is None and rule.severity is not None:
            severity, reason = rule.severity, f"rule:{rule.id}"
        if category is None and rule.category is not None:
            category = rule.category
    concerns = builtin_concerns(folded) if builtin else []
    language = concerns[0][1] if concerns else None
    # The most severe shipped concern decides, so "outage" beats "speak to a manager".
    order = list(Severity)
    for concern, lang, phrase in sorted(concerns,
                                        key=lambda c: order.index(BUILTIN_EFFECT[c[0]][0])):
        effect, is_executive = BUILTIN_EFFECT[concern]
        executive = executive or is_executive
        escalation = escalation or concern == "manager"
        if severity is None:
            severity, reason = effect, f"keyword:{concern}:{lang}:{phrase}"
    if severity is None:
        severity, reason = default, "default"
    assert reason is not None
    return Decision(severity, reason, category, executive, escalation, language,
                    tuple(c[0] for c in concerns))


def _matches(match: RuleMatch, facts: Facts, folded: str) -> bool:
    if match.channel and facts.channel not in match.channel:
        return False
    if match.category and facts.category not in match.category:
        return False
    if match.recipient and (facts.recipient or "").lower() not in [
        r.lower() for r in match.recipient
    ]:
        return False
    if match.tier and facts.tier not in match.tier:
        return False
    return not (match.keywords and find_phrase(folded, match.keywords) is None)


_STOPWORDS = {
    "en": {"the", "and", "is", "not", "our", "we", "you", "please", "with", "have"},
    "pt": {"o", "nao", "que", "nosso", "voces", "por", "favor", "esta", "com", "uma"},
    "es": {"el", "los", "que", "no", "nuestro", "por", "favor", "esta", "con", "una"},
    "it": {"il", "non", "che", "nostro", "per", "favore", "sono", "con", "una", "gli"},
}


#: Each stop word's languages (a word may be in several: "que", "por", "una").
_LANGUAGES_OF: dict[str, list[str]] = {}
for _lang, _words in _STOPWORDS.items():
    for _word in _words:
        _LANGUAGES_OF.setdefault(_word, []).append(_lang)
_GREEK = re.compile("[\u0370-\u03ff]")
#: Enough words to tell a language; the rest of a long message would only cost CPU
#: (a 100 KB mail took 4 ms to guess on the whole text).
LANGUAGE_SAMPLE = 2_000


def detect_language(text: str) -> str | None:
    """A cheap guess among the languages we ship rules for; None when unsure."""
    sample = text[:LANGUAGE_SAMPLE]
    if len(_GREEK.findall(sample)) > 3:
        return "el"
    scores = dict.fromkeys(_STOPWORDS, 0)
    for word in fold(sample).split():
        for lang in _LANGUAGES_OF.get(word, ()):
            scores[lang] += 1
    best = max(scores, key=scores.__getitem__)
    return best if scores[best] >= 2 else None
