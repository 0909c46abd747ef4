"""Signatures, size limits, bad bodies and idempotent creates: each gets its clear error and
the service keeps serving."""

from __future__ import annotations

import json
import smtplib
import time

import anyio
import pytest

from escalator.ingest.main import SPEC
from escalator.ingest.security import SIGNATURE_HEADER, sign, verify
from escalator.shared.problems import Problem
from tests.ingest.helpers import api_event, fixture_bytes, fixture_json, ingest_settings
from tests.support import Env, free_port, running, wait_until

SECRETS = {"chat": ["new-chat-secret", "old-chat-secret"]}


def test_verify_rotation_window_and_tampering() -> None:
    from pydantic import SecretStr

    secrets = [SecretStr(s) for s in SECRETS["chat"]]
    body = b'{"a":1}'
    verify(sign("old-chat-secret", body), body, secrets, tolerance=300)
    new, old = sign("new-chat-secret", body), sign("old-chat-secret", body)
    both = f"{new},v1={old.split('v1=')[1]}"
    verify(both, body, secrets, tolerance=300)
    for header, now in ((sign("new-chat-secret", body + b" "), None),
                        (sign("wrong", body), None),
                        (sign("new-chat-secret", body, int(time.time()) - 301), None),
                        ("v1=abc", None), ("", None), ("t=1,v1=", None)):
        with pytest.raises(Problem) as caught:
            verify(header, body, secrets, tolerance=300, now=now)
        assert caught.value.status == 401


async def test_http_guards(pg_env: Env) -> None:
    settings = ingest_settings(pg_env, webhook_secrets=SECRETS, max_body_bytes=4096)
    async with running(SPEC, settings) as svc:
        c = svc.client
        chat = json.dumps(fixture_json("chat_handoff.json")).encode()
        json_type = {"Content-Type": "application/json"}
        unsigned = await c.post("/v1/channels/chat/events", content=chat, headers=json_type)
        assert unsigned.status_code == 401 and SIGNATURE_HEADER in unsigned.json()["detail"]
        forged = await c.post("/v1/channels/chat/events", content=chat, headers={
            **json_type, SIGNATURE_HEADER: sign("guess", chat)})
        assert forged.status_code == 401
        # A signed request needs no API key; the old secret still works during rotation.
        signed = await c.post("/v1/channels/chat/events", content=chat, headers={
            **json_type, SIGNATURE_HEADER: sign("old-chat-secret", chat), "Authorization": ""})
        assert signed.status_code == 202, signed.text
        # The same signed bytes again are a replay, whichever secret signed them; an
        # expired timestamp is refused; the sender's re-signed retry is taken.
        replayed = await c.post("/v1/channels/chat/events", content=chat,
                                headers=signed.request.headers)
        assert replayed.status_code == 401 and "already used" in replayed.json()["detail"]
        expired = await c.post("/v1/channels/chat/events", content=chat, headers={
            **json_type, SIGNATURE_HEADER: sign("new-chat-secret", chat,
                                                int(time.time()) - 301)})
        assert expired.status_code == 401 and "window" in expired.json()["detail"]
        stamp = int(signed.request.headers[SIGNATURE_HEADER].split(",")[0][2:]) - 1
        resigned = await c.post("/v1/channels/chat/events", content=chat, headers={
            **json_type, SIGNATURE_HEADER: sign("new-chat-secret", chat, stamp)})
        assert resigned.status_code == 202, resigned.text
        assert resigned.json()["ticket_id"] == signed.json()["ticket_id"]
        metrics = (await c.get("/metrics")).text
        assert 'escalator_ingest_webhook_refused_total{channel="chat",reason="replayed"} 1.0' \
            in metrics
        # A bad signature is refused before the (invalid) body is even parsed.
        garbage = b"{not json"
        assert (await c.post("/v1/channels/chat/events", content=garbage, headers={
            **json_type, SIGNATURE_HEADER: sign("nope", garbage)})).status_code == 401

        huge = b'{"external_id": "' + b"x" * 5000 + b'"}'
        too_big = await c.post("/v1/channels/api/events", content=huge, headers=json_type)
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"
        truncated = await c.post("/v1/channels/api/events", content=b'{"external_id": "a", "su',
                                 headers=json_type)
        assert truncated.status_code == 422
        assert truncated.json()["errors"][0]["field"].startswith("body")
        no_key = await c.post("/v1/channels/api/events", json=api_event(),
                              headers={"Authorization": ""})
        assert no_key.status_code == 401

        mails = {"Content-Type": "message/rfc822"}
        wrong_type = await c.post("/v1/channels/email/events", content=b"From: a@b.example",
                                  headers=json_type)
        assert wrong_type.status_code == 415
        broken = await c.post("/v1/channels/email/events", headers=mails,
                              content=fixture_bytes("email_malformed_multipart.eml"))
        assert broken.status_code == 422 and "malformed MIME" in broken.json()["detail"]

        key = {"Idempotency-Key": "crm-create-1"}
        first = await c.post("/v1/channels/api/events", json=api_event(), headers=key)
        retry = await c.post("/v1/channels/api/events", json=api_event(), headers=key)
        assert first.json() == retry.json() and retry.headers["idempotent-replayed"] == "true"
        other = await c.post("/v1/channels/api/events", json=api_event(subject="other"),
                             headers=key)
        assert other.status_code == 422
        assert other.json()["errors"][0]["field"] == "header.Idempotency-Key"

        listing = (await c.get("/v1/tickets")).json()["items"]
        assert sorted(t["channel"] for t in listing) == ["api", "chat"]  # nothing else stored
        assert (await c.get("/healthz")).status_code == 200


async def test_smtp_listener_receives_mail(pg_env: Env) -> None:
    port = free_port()
    settings = ingest_settings(pg_env, smtp_enabled=True, smtp_port=port)
    async with running(SPEC, settings) as svc:
        await wait_until(lambda: svc.runtime.extras.get("smtp_port") == port,
                         message="SMTP listener did not bind")

        def send() -> dict[str, tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                refused = {}
                try:
                    smtp.sendmail("relay@spam.example", ["victim@elsewhere.example"], b"x")
                except smtplib.SMTPRecipientsRefused as exc:
                    refused = exc.recipients
                smtp.sendmail("joao.silva@acme.example", ["billing@helpdesk.example"],
                              fixture_bytes("email_multipart_reply.eml"))
                return refused

        refused = await anyio.to_thread.run_sync(send)
        assert refused["victim@elsewhere.example"][0] == 550
        page = (await svc.client.get("/v1/tickets", params={"channel": "email"})).json()
        [ticket] = page["items"]
        assert ticket["department"] == "billing"  # the envelope recipient decides
        assert ticket["customer_account_id"] == "acme"
        assert ticket["details"]["attachments"][0]["name"] == "relatorio-erros.pdf"
