"""Raw RFC 5322 mail -> ``Inbound``: what the HTTP email channel and the SMTP listener share.

The stdlib parser (``email.policy.default``, each header parsed once) does the RFC work:
MIME structure, RFC 2047 encoded words, transfer encodings and charsets. What is ours:
refusing structurally broken mail with a clear reason, choosing the text part (HTML
converted when it is the only one), stripping quoted history and signatures, attachment
metadata with a size limit, and the thread ids that keep one conversation on one ticket.
"""

from __future__ import annotations

import email
import email.policy
import functools
import hashlib
import re
from email.headerregistry import Address, BaseHeader
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

from escalator.ingest import textutil
from escalator.ingest.inbound import CustomerRef, Inbound
from escalator.shared.problems import Problem

MAX_HEADER_CHARS = 8_000
MAX_HEADER_BLOCK = 65_536
_STRUCTURAL_DEFECTS = {"NoBoundaryInMultipartDefect", "StartBoundaryNotFoundDefect",
                       "CloseBoundaryNotFoundDefect", "MultipartInvariantViolationDefect",
                       "MissingHeaderBodySeparatorDefect"}
_MSGID = re.compile(r"<[^<>\s]{1,490}>")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|res|r|rif|ενθ|σχετ)\s*(\[\d+\])?\s*:\s*)+",
                           re.IGNORECASE)


#: Longer header lines (a long References chain) are parsed as the stdlib does, so the
#: cache of parsed lines stays small.
_REMEMBERED_CHARS = 1_000


class _RememberingPolicy(email.policy.EmailPolicy):
    """``email.policy.default``, but a header is parsed once, not on every read.

    The stdlib parses a header again on each ``get``: the bench's plain one-part mail
    was parsed 18 times over for 5 headers (``get_content_type`` alone reads
    Content-Type eight times), and that was most of the 1 ms a message cost. Parsed
    headers are immutable strings, so a parse can be shared by every message with the
    same header line (Content-Type, To of a support address) too.
    """

    def header_fetch_parse(self, name: str, value: str) -> BaseHeader:
        if hasattr(value, "name") or len(value) > _REMEMBERED_CHARS:
            return super().header_fetch_parse(name, value)  # type: ignore[no-any-return]
        return _parsed(name, value)


@functools.lru_cache(maxsize=1_024)
def _parsed(name: str, value: str) -> BaseHeader:
    return email.policy.default.header_fetch_parse(name, value)  # type: ignore[no-any-return]


_POLICY = _RememberingPolicy()


def _bad(field: str, message: str, status: int = 422) -> Problem:
    return Problem(status, "Unprocessable Content" if status == 422 else "Content Too Large",
                   f"{field}: {message}",
                   errors=[{"field": field, "message": message, "type": "value_error"}])


def parse(raw: bytes, *, departments: dict[str, str], max_attachment_bytes: int,
          recipients: list[str] | None = None) -> Inbound:
    """Normalize one message; ``recipients`` (the SMTP envelope) beat the To header."""
    header_block = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if len(header_block) > MAX_HEADER_BLOCK:
        raise _bad("headers", f"header block exceeds {MAX_HEADER_BLOCK} bytes", 431)
    try:
        msg = email.message_from_bytes(raw, policy=_POLICY)
    except Exception as exc:  # noqa: BLE001 - the parser is lenient; anything left is bad input
        raise _bad("body", f"not a parseable RFC 5322 message ({type(exc).__name__})") from exc
    assert isinstance(msg, EmailMessage)
    _check_structure(msg)
    sender = _sender(msg)
    message_id = _ids(msg.get("Message-ID", ""))
    own = message_id[0] if message_id else "<" + hashlib.sha256(raw).hexdigest() + "@ingest>"
    parents = _ids(msg.get("In-Reply-To", ""))
    references = _ids(msg.get("References", ""))
    root = references[0] if references else (parents[0] if parents else own)
    to = recipients or [a for _, a in getaddresses(
        [str(msg.get(h, "")) for h in ("Delivered-To", "To", "Cc")]) if a]
    department, recipient = _department(to, departments)
    body, html_only = _body(msg)
    description = textutil.strip_reply(body) if body else ""
    subject = _REPLY_PREFIX.sub("", _header(msg, "Subject")).strip() or "(no subject)"
    language = _header(msg, "Content-Language").split(",")[0].strip() or None
    return Inbound(
        channel="email", external_id=root[:200], subject=textutil.clean(subject)[:500],
        description=textutil.clean(description)[:100_000] or "(empty message)",
        customer=CustomerRef(email=sender.addr_spec.lower(), name=sender.display_name or None,
                             language=language),
        language=language, mode="reply", author=sender.addr_spec.lower(),
        recipient=recipient, department=department,
        thread_refs=list(dict.fromkeys([own, *parents, *references])),
        details={"message_id": own, "in_reply_to": parents[0] if parents else None,
                 "html_only": html_only, "recipient": recipient,
                 "attachments": _attachments(msg, max_attachment_bytes)},
    )


def _check_structure(msg: EmailMessage) -> None:
    for part in msg.walk():
        names = {type(d).__name__ for d in part.defects}
        broken = names & _STRUCTURAL_DEFECTS
        if broken:
            raise _bad("body", "malformed MIME: " + ", ".join(sorted(broken)))
    # Raw lengths: parsing every header (Received, DKIM-Signature, ...) just to measure
    # it cost more than the rest of the message.
    for name, value in msg.raw_items():
        if len(value) > MAX_HEADER_CHARS:
            raise _bad(f"headers.{name}", f"longer than {MAX_HEADER_CHARS} characters", 431)


def _header(msg: EmailMessage, name: str) -> str:
    try:
        return str(msg.get(name, "") or "")
    except (ValueError, LookupError, IndexError):
        return ""


def _sender(msg: EmailMessage) -> Address:
    raw_from = _header(msg, "From")
    if not raw_from:
        raise _bad("headers.From", "a message needs a From address")
    name, addr = parseaddr(raw_from)
    if not addr or "@" not in addr or addr.startswith("@") or addr.endswith("@"):
        raise _bad("headers.From", f"not an email address: {raw_from[:200]!r}")
    username, domain = addr.rsplit("@", 1)
    return Address(display_name=name, username=username, domain=domain)


def _ids(value: object) -> list[str]:
    return _MSGID.findall(str(value or ""))


def _department(to: list[str], departments: dict[str, str]) -> tuple[str | None, str | None]:
    lowered = {k.lower(): v for k, v in departments.items()}
    for address in to:
        address = address.lower()
        local = address.split("@", 1)[0]
        if address in lowered:
            return lowered[address], address
        if local in lowered:
            return lowered[local], address
    return None, (to[0].lower() if to else None)


def _decode(part: EmailMessage) -> str:
    """The part's text; an unknown or lying charset degrades to replacement characters."""
    try:
        content = part.get_content()
        return content if isinstance(content, str) else content.decode("utf-8", "replace")
    except (LookupError, UnicodeError, AssertionError, KeyError):
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        for charset in (part.get_content_charset() or "", "utf-8", "cp1252"):
            try:
                return data.decode(charset) if charset else data.decode("utf-8")
            except (LookupError, UnicodeError):
                continue
        return data.decode("utf-8", "replace")


def _body(msg: EmailMessage) -> tuple[str, bool]:
    plain = msg.get_body(preferencelist=("plain",))
    if plain is not None:
        return _decode(plain), False  # type: ignore[arg-type]
    html = msg.get_body(preferencelist=("html",))
    if html is not None:
        return textutil.html_to_text(_decode(html)), True  # type: ignore[arg-type]
    if msg.get_content_maintype() == "text":
        return _decode(msg), False
    return "", False


def _attachments(msg: EmailMessage, limit: int) -> list[dict[str, object]]:
    found = []
    for part in msg.iter_attachments():
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        name = part.get_filename() or "unnamed"
        if len(data) > limit:
            raise _bad(f"attachments.{name}", f"{len(data)} bytes exceeds the {limit}-byte "
                       "attachment limit", 413)
        found.append({"name": name[:255], "content_type": part.get_content_type(),
                      "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return found
