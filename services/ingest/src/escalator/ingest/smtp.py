"""SMTP listener (aiosmtpd): MTAs and mail clients deliver straight to ingest.

Only recipients in the configured ``smtp_domains`` are accepted (``550`` otherwise), so
the listener is never an open relay; each message is stored in its own transaction
before ``250`` is answered, so an accepted message is never lost. A message ingest
refuses gets a permanent ``554`` with the reason, so the sender's MTA bounces it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from escalator.ingest import email_in, service
from escalator.ingest.config import IngestConfig
from escalator.ingest.settings import IngestSettings
from escalator.shared.app import Runtime
from escalator.shared.problems import Problem

log = logging.getLogger(__name__)


class IngestHandler:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings: IngestSettings = runtime.settings  # type: ignore[assignment]
        self.settings = settings
        self.config: IngestConfig = runtime.extras["config"]
        self.domains = {d.lower() for d in self.config.smtp_domains}

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        domain = address.rsplit("@", 1)[-1].lower()
        if domain not in self.domains:
            return "550 5.7.1 relaying denied: not a help-desk domain"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content
        if len(raw) > self.settings.max_email_bytes:
            return "552 5.3.4 message too big"
        try:
            inbound = email_in.parse(raw, departments=self.config.departments,
                                     max_attachment_bytes=self.settings.max_attachment_bytes,
                                     recipients=list(envelope.rcpt_tos))
            async with self.runtime.sessionmaker() as db, db.begin():
                outcome = await service.ingest(db, inbound, self.config)
        except Problem as exc:
            return f"554 5.6.0 {exc.detail or exc.title}"[:500]
        ticket = outcome.ticket_id or "none"
        return f"250 OK ticket {ticket}"


async def run_listener(runtime: Runtime) -> None:
    """Serve SMTP until cancelled; does nothing unless ``ESCALATOR_SMTP_ENABLED``."""
    settings: IngestSettings = runtime.settings  # type: ignore[assignment]
    if not settings.smtp_enabled:
        return
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    handler = IngestHandler(runtime)
    server = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=settings.max_email_bytes,
                     enable_SMTPUTF8=True, hostname="escalator-ingest"),
        host=settings.smtp_host, port=settings.smtp_port)
    runtime.extras["smtp_port"] = server.sockets[0].getsockname()[1]
    log.info("SMTP listener on %s:%s", settings.smtp_host, runtime.extras["smtp_port"])
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
        await server.wait_closed()
