"""Plain text out of whatever customers send: HTML, quoted replies, signatures.

Tickets store plain text only. HTML is converted to text (tags dropped, ``<script>`` and
``<style>`` bodies dropped, entities decoded), so no markup a customer sends can reach
an agent's browser: frontends may render descriptions without a sanitizer.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
          "table", "ul", "ol", "pre", "hr"}
_SKIP = {"script", "style", "head", "title", "template", "noscript"}
_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>|<!--")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.quote_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "blockquote" or (tag == "div" and any(
                k == "class" and v and "gmail_quote" in v for k, v in attrs)):
            self.quote_depth += 1
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(self.skipping - 1, 0)
        elif tag == "blockquote":
            self.quote_depth = max(self.quote_depth - 1, 0)
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.quote_depth:
            # Keep quoted HTML recognisable to the quote stripper below.
            data = "\n".join(f"> {line}" for line in data.splitlines())
        self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def looks_like_html(text: str) -> bool:
    return bool(_TAG.search(text))


def clean(text: str) -> str:
    """Plain text for storage: HTML converted, line ends made ``\n``, control and format
    characters dropped, and other spaces (no-break, ideographic, ...) made plain spaces,
    so words they separate stay apart."""
    if looks_like_html(text):
        text = html_to_text(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Nearly all text is clean: one pass in C says so, the filter runs only when not.
    if not text.replace("\n", "").replace("\t", "").isprintable():
        text = "".join(c if c in "\n\t" or c.isprintable() else " " if c.isspace() else ""
                       for c in text)
    return text.strip()


_QUOTE_HEADER = re.compile(
    r"^(On .{5,200} wrote:|Em .{5,200} escreveu:|El .{5,200} escribió:|Il .{5,200} ha scritto:"
    r"|Στις .{5,200} έγραψε:|-{2,} ?Original Message ?-{2,}|-{2,} ?Mensagem original ?-{2,}"
    r"|From: .+)$", re.IGNORECASE)
_SIGNATURE = re.compile(r"^(-- ?|__+|Sent from my \w+.*|Enviado do meu .*|Enviado desde mi .*"
                        r"|Inviato da .*|Στάλθηκε από .*)$", re.IGNORECASE)


def strip_reply(text: str) -> str:
    """The new part of an email body: quoted history and the signature removed.

    Recognises ``>`` quoting, the "On ... wrote:" line in our five languages, Outlook's
    "Original Message"/"From:" blocks and the RFC 3676 ``-- `` signature separator.
    Falls back to the whole text when stripping would leave nothing.
    """
    kept: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if _QUOTE_HEADER.match(stripped) or _SIGNATURE.match(line.rstrip("\n")):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line.rstrip())
    result = "\n".join(kept).strip()
    return result or text.strip()
