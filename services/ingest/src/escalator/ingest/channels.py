"""The JSON channel forms (api, portal, chat, phone, social) and their normalization.

Each model validates strictly (``extra="forbid"``, bounded strings) so a bad event is
a 422 naming the field; ``to_inbound`` maps it to the one ``Inbound`` shape. Examples
are shaped like what the real systems send, and show up in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from escalator.ingest.inbound import CustomerRef, Escalation, Inbound
from escalator.ingest.schemas import AccountId, ApiChannelEvent, Email, Phone
from escalator.ingest.textutil import clean
from escalator.shared.config import Timestamp
from escalator.shared.events import Severity


def _s(max_length: int, min_length: int = 1) -> Any:
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=min_length,
                                            max_length=max_length)]


Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Name = Short
Body = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid")


def api_inbound(body: ApiChannelEvent) -> Inbound:
    c = body.customer
    return Inbound(
        channel="api", external_id=body.external_id, subject=clean(body.subject),
        description=clean(body.description), severity=body.severity, category=body.category,
        customer=CustomerRef(email=str(c.email), name=c.name, tier=c.tier,
                             account_id=c.account_id, phone=c.phone, language=c.language),
        language=c.language, mode="replace",
    )


class PortalSubmission(_Form):
    """A customer-portal form, posted by the portal's backend."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "submission_id": "ptl-2026-11-23-000917", "account_id": "acme",
        "email": "joao.silva@acme.example", "name": "João Silva",
        "category": "billing", "subject": "Fatura duplicada em novembro",
        "description": "Recebemos duas faturas com o mesmo número (INV-88121). "
                       "Se não for corrigido até sexta, vamos cancelar o contrato.",
        "requested_priority": "high", "language": "pt",
    }]})

    submission_id: Short = Field(description="The conversation id on the portal; a reply "
                                 "on the same case repeats it")
    account_id: AccountId | None = None
    email: Email
    name: Name
    category: _s(100) | None = None  # type: ignore[valid-type]
    subject: _s(500)  # type: ignore[valid-type]
    description: Body  # type: ignore[valid-type]
    requested_priority: Literal["low", "normal", "high", "urgent"] | None = None
    language: _s(20) | None = None  # type: ignore[valid-type]


PORTAL_PRIORITY = {"low": Severity.low, "normal": Severity.medium, "high": Severity.high,
                   "urgent": Severity.critical}


def portal_inbound(form: PortalSubmission) -> Inbound:
    return Inbound(
        channel="portal", external_id=form.submission_id, subject=clean(form.subject),
        description=clean(form.description),
        severity=PORTAL_PRIORITY[form.requested_priority] if form.requested_priority else None,
        category=form.category, language=form.language, author=str(form.email),
        customer=CustomerRef(email=str(form.email), name=form.name,
                             account_id=form.account_id, language=form.language),
    )


class ChatLine(_Form):
    sender: Literal["visitor", "bot", "agent"] = Field(alias="from")
    text: _s(10_000)  # type: ignore[valid-type]
    at: Timestamp


class ChatVisitor(_Form):
    name: Name
    email: Email | None = None
    account_id: AccountId | None = None
    phone: Phone | None = None


class ChatEvent(_Form):
    """A live-chat message, or the chatbot handing the session to a human."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "kind": "handoff", "session_id": "chat_7Hq2KfX1", "visitor": {
            "name": "Giulia Bianchi", "email": "giulia@pastificio.example",
            "account_id": "pastificio"},
        "text": "Il bot non capisce: voglio parlare con un responsabile.",
        "handoff_reason": "intent_not_understood", "language": "it",
        "transcript": [
            {"from": "visitor", "text": "Gli ordini non arrivano al magazzino da ieri.",
             "at": "2026-11-23T08:01:12Z"},
            {"from": "bot", "text": "Hai provato a sincronizzare di nuovo il catalogo?",
             "at": "2026-11-23T08:01:14Z"},
            {"from": "visitor", "text": "Sì, tre volte. Non funziona.",
             "at": "2026-11-23T08:02:40Z"},
        ],
    }]})

    kind: Literal["message", "handoff"] = "message"
    session_id: Short
    visitor: ChatVisitor
    text: _s(10_000)  # type: ignore[valid-type]
    transcript: list[ChatLine] = Field(default=[], max_length=500)
    handoff_reason: Short | None = None
    language: _s(20) | None = None  # type: ignore[valid-type]


def chat_inbound(event: ChatEvent) -> Inbound:
    lines = [f"[{line.at:%H:%M:%S}] {line.sender}: {clean(line.text)}"
             for line in event.transcript]
    text = clean(event.text)
    description = "\n".join([*lines, f"visitor: {text}"]) if lines else text
    v = event.visitor
    handoff = event.kind == "handoff"
    return Inbound(
        channel="chat", external_id=event.session_id,
        subject=(f"Chatbot hand-off: {text}" if handoff else f"Chat: {text}")[:200],
        description=description, language=event.language, author=str(v.email or v.name),
        customer=CustomerRef(email=str(v.email) if v.email else None, name=v.name,
                             account_id=v.account_id, phone=v.phone, language=event.language),
        details={"session_id": event.session_id, "kind": event.kind,
                 "handoff_reason": event.handoff_reason,
                 "transcript_lines": len(event.transcript)},
        escalation=Escalation("hierarchical", "chatbot",
                              f"chatbot hand-off: {event.handoff_reason or 'unresolved'}")
        if handoff else None,
    )


class PhoneCall(_Form):
    """A call-center call record (CTI/ACD export)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "call_id": "CA9f2c41e07d", "case_ref": None, "caller_number": "+30 210 555 0142",
        "caller_name": "Nikos Georgiou", "agent": "bruno", "queue": "support-el",
        "ivr_path": ["language:el", "support", "outage"], "started_at":
        "2026-11-23T07:55:02Z", "duration_seconds": 412, "transferred_from": "alice",
        "subject": "Πλατφόρμα εκτός λειτουργίας",
        "notes": "Ο πελάτης αναφέρει διακοπή λειτουργίας σε όλα τα καταστήματα από τις 07:30.",
    }]})

    call_id: Short
    case_ref: Short | None = Field(default=None, description="An existing conversation the "
                                   "call continues (a callback)")
    caller_number: Phone
    caller_name: Name | None = None
    account_id: AccountId | None = None
    agent: Short | None = None
    queue: Short | None = None
    ivr_path: list[_s(100)] = Field(default=[], max_length=50)  # type: ignore[valid-type]
    started_at: Timestamp
    duration_seconds: StrictInt = Field(ge=0, le=86_400)
    transferred_from: Short | None = None
    subject: _s(500) | None = None  # type: ignore[valid-type]
    notes: Body | None = None  # type: ignore[valid-type]
    transcript: Body | None = None  # type: ignore[valid-type]
    severity: Severity | None = None


def phone_inbound(call: PhoneCall) -> Inbound:
    text = clean(call.notes or call.transcript or "")
    if not text:
        text = f"Call of {call.duration_seconds}s on queue {call.queue or '-'}, no notes."
    return Inbound(
        channel="phone", external_id=call.case_ref or call.call_id,
        subject=clean(call.subject or text.split("\n")[0])[:500], description=text,
        severity=call.severity, author=call.caller_number,
        customer=CustomerRef(phone=call.caller_number, name=call.caller_name,
                             account_id=call.account_id),
        details={"call_id": call.call_id, "agent": call.agent, "queue": call.queue,
                 "ivr_path": call.ivr_path, "duration_seconds": call.duration_seconds,
                 "transferred_from": call.transferred_from,
                 "started_at": call.started_at.isoformat()},
    )


class SocialPost(_Form):
    """A mention or direct message from a social-media listening tool."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "platform": "x", "kind": "mention", "post_id": "1860312458120", "thread_id":
        "1860312458120", "post_url": "https://x.com/mariagl/status/1860312458120",
        "handle": "@mariagl", "author_name": "María García", "public": True,
        "text": "@helpdesk otra vez caída del servicio, ¡es la tercera esta semana!",
        "posted_at": "2026-11-23T08:10:00Z", "language": "es",
    }]})

    platform: Literal["x", "twitter", "facebook", "instagram", "linkedin", "whatsapp"]
    kind: Literal["mention", "direct_message", "comment"]
    post_id: Short
    thread_id: Short | None = None
    post_url: _s(2000) | None = None  # type: ignore[valid-type]
    handle: _s(100)  # type: ignore[valid-type]
    author_name: Name | None = None
    public: StrictBool
    text: _s(10_000)  # type: ignore[valid-type]
    posted_at: Timestamp
    language: _s(20) | None = None  # type: ignore[valid-type]


def social_inbound(post: SocialPost) -> Inbound:
    text = clean(post.text)
    handle = f"{post.platform}:{post.handle}"
    return Inbound(
        channel="social", external_id=f"{post.platform}:{post.thread_id or post.post_id}",
        subject=f"{post.platform} {post.kind.replace('_', ' ')} from {post.handle}: "
                f"{text}"[:200],
        description=text, language=post.language, author=handle,
        customer=CustomerRef(handle=handle, name=post.author_name or post.handle),
        details={"platform": post.platform, "kind": post.kind, "post_url": post.post_url,
                 "public": post.public, "post_id": post.post_id,
                 "posted_at": post.posted_at.isoformat()},
    )
