"""Rendering messages with a sandboxed Jinja engine.

Templates are edited over REST by people who are not developers, so they run in
``SandboxedEnvironment``: no attribute access to internals, no imports, no calls to
unsafe methods. A template is validated on save by compiling it and rendering it
against a sample context, so a typo is a 422 at edit time, not a failed delivery later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from escalator.notifier.catalog import SHIPPED, Key
from escalator.notifier.messages import summary
from escalator.notifier.rules import Person, TicketView
from escalator.shared import tokens
from escalator.shared.events import CloudEvent, Holder, TicketSnapshot, utcnow

#: Templates longer than this are refused: a message, not a document.
MAX_TEMPLATE = 20_000

_env = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False,
                            keep_trailing_newline=True)
#: Validation is strict: an unknown name or an unsafe attribute is an error at save time.
_strict = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                               keep_trailing_newline=True)


@lru_cache(maxsize=512)
def _compile(source: str) -> Any:
    return _env.from_string(source)


def render_text(source: str, context: dict[str, Any]) -> str:
    return str(_compile(source).render(context))


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    language: str
    template: str


def lookup(overrides: dict[Key, tuple[str | None, str]], kinds: list[str], audience: str,
           channel: str, language: str) -> tuple[Key, tuple[str | None, str]] | None:
    """The most specific template: each kind in the recipient's language, then in
    English, then the audience's ``default``; REST overrides win over shipped ones."""
    for event in [*kinds, "default"]:
        for lang in dict.fromkeys([language, "en"]):
            key = (event, audience, channel, lang)
            if key in overrides:
                return key, overrides[key]
            if key in SHIPPED:
                return key, SHIPPED[key]
    return None


@dataclass(frozen=True)
class Links:
    """How to build the URLs messages carry."""

    ticket_url: str
    survey_url: str
    survey_secret: str | None
    survey_days: float


def context(event: CloudEvent[Any], view: TicketView, person: Person, kind: str, *,
            links: Links, promise_hours: float | None) -> dict[str, Any]:
    """Everything a template may use; plain values only (the sandbox sees no models)."""
    data = event.data
    ticket_id = event.subject
    snapshot = data if isinstance(data, TicketSnapshot) else None
    customer = snapshot.customer if snapshot else view.customer
    holder = (getattr(data, "assignee", None) or getattr(data, "to_assignee", None)
              or view.assignee)
    comment = getattr(data, "comment", None)
    survey = ""
    if links.survey_secret:
        token = tokens.sign(links.survey_secret, "survey", ticket_id,
                            utcnow() + timedelta(days=links.survey_days))
        survey = links.survey_url.format(ticket_id=ticket_id, token=token)
    level_name = getattr(data, "level_name", None) or getattr(data, "to_level_name", None)
    return {
        "ticket_id": ticket_id, "kind": kind, "event_type": event.type,
        "event": data.model_dump(mode="json"), "summary": summary(event),
        "link": links.ticket_url.format(ticket_id=ticket_id),
        "subject": snapshot.subject if snapshot else (view.subject or ticket_id),
        "severity": str(getattr(data, "severity", None) or view.severity or "unknown"),
        "level": getattr(data, "level", None) if hasattr(data, "level")
        else getattr(data, "to_level", view.level),
        "level_name": level_name, "holder": holder.name if isinstance(holder, Holder) else None,
        "clock": getattr(data, "clock", None), "due_at": str(getattr(data, "due_at", "")),
        "reason": getattr(data, "reason", None),
        "customer_name": customer.name if customer else None,
        "tier": customer.tier if customer else None,
        "recipient_name": person.name, "role": person.role, "language": person.language,
        "comment": comment.body if comment is not None and comment.public else None,
        "promise_hours": f"{promise_hours:g}" if promise_hours is not None else "",
        "survey_url": survey,
    }


def render(overrides: dict[Key, tuple[str | None, str]], kinds: list[str], audience: str,
           channel: str, ctx: dict[str, Any]) -> Rendered | None:
    found = lookup(overrides, kinds, audience, channel, str(ctx["language"]))
    if found is None:
        return None
    key, (subject, body) = found
    return Rendered(render_text(subject or "", ctx).strip().replace("\n", " "),
                    render_text(body, ctx), key[3], "/".join(key))


def sample_context() -> dict[str, Any]:
    """A context with every name filled in, for validation on save."""
    return {
        "ticket_id": "T-1", "kind": "ticket.escalated", "event_type": "ticket.escalated",
        "event": {"ticket_id": "T-1"}, "summary": "Ticket T-1 escalated", "link": "https://x/T-1",
        "subject": "Printer on fire", "severity": "high", "level": 1, "level_name": "L2",
        "holder": "Chen Wei", "clock": "first_response", "due_at": "2026-01-01T00:00:00Z",
        "reason": "first_response breached", "customer_name": "Ana", "tier": "gold",
        "recipient_name": "Ana", "role": "customer", "language": "en", "comment": "On it.",
        "promise_hours": "4", "survey_url": "https://x/survey",
    }


def validate(field: str, source: str | None) -> str | None:
    """An error message naming the problem, or None when the template is usable."""
    if source is None:
        return None
    if len(source) > MAX_TEMPLATE:
        return f"{field}: longer than {MAX_TEMPLATE} characters"
    try:
        _strict.from_string(source).render(sample_context())
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        return f"{field}: {exc.message or exc}" + (f" (line {line})" if line else "")
    return None
