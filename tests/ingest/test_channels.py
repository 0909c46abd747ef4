"""Every channel with real-world-shaped payloads, end to end through the running service."""

from __future__ import annotations

from escalator.ingest.main import SPEC
from tests.ingest.helpers import (
    api_event,
    fixture_bytes,
    fixture_json,
    ingest_settings,
    ticket_events,
    types_for,
)
from tests.support import Env, running

PD_KEY = "R0UT1NGKEY0123456789ABCDEFGHIJKL"
RFC822 = {"Content-Type": "message/rfc822"}


async def test_conversational_channels(env: Env) -> None:
    async with running(SPEC, ingest_settings(env)) as svc:
        c = svc.client
        # Portal: HTML sanitized, the category rule wins over requested priority? No:
        # an explicit priority is explicit; cancellation marks the ticket executive.
        portal = await c.post("/v1/channels/portal/events", json=fixture_json(
            "portal_submission.json"))
        assert portal.status_code == 202, portal.text
        p = (await c.get(f"/v1/tickets/{portal.json()['ticket_id']}")).json()
        assert p["severity"] == "medium" and p["severity_reason"] == "explicit"
        assert p["executive"] is True and "<" not in p["description"]
        assert "cancelar o contrato" in p["description"] and p["language"] == "pt"

        # Chatbot hand-off: a ticket that must reach a human.
        chat = await c.post("/v1/channels/chat/events", json=fixture_json("chat_handoff.json"))
        ch = (await c.get(f"/v1/tickets/{chat.json()['ticket_id']}")).json()
        assert ch["channel"] == "chat" and ch["language"] == "it"
        assert "bot: Mi dispiace" in ch["description"] and "<a" not in ch["description"]
        assert ch["details"]["handoff_reason"] == "intent_not_understood"

        # Phone: the caller's number finds the directory account; Greek outage keyword.
        call = await c.post("/v1/channels/phone/events", json=fixture_json("phone_call.json"))
        ph = (await c.get(f"/v1/tickets/{call.json()['ticket_id']}")).json()
        assert ph["customer_account_id"] == "olympus" and ph["customer_tier"] == "premium"
        assert ph["severity"] == "critical" and ph["severity_reason"].startswith(
            "keyword:outage:el:")
        assert ph["details"]["ivr_path"] == ["language:el", "support", "outage"]

        # Social: an unknown handle becomes a new customer; the thread is the conversation.
        post = fixture_json("social_mention.json")
        social = await c.post("/v1/channels/social/events", json=post)
        follow = await c.post("/v1/channels/social/events", json={
            **post, "post_id": "1860312999999", "text": "@helpdesk ¿alguien me responde?"})
        assert follow.json() == {"ticket_id": social.json()["ticket_id"], "created": False}
        so = (await c.get(f"/v1/tickets/{social.json()['ticket_id']}")).json()
        assert so["severity_reason"] == "keyword:outage:es:caida del servicio"
        assert "onerror" not in so["description"] and so["customer_account_id"].startswith("c-")

        # Email over HTTP: the reply in the fixture continues <CAJ5x2-orig-0@...>.
        first = await c.post("/v1/channels/email/events", headers=RFC822, content=(
            b"From: Joao Silva <joao.silva@acme.example>\r\nTo: support@helpdesk.example\r\n"
            b"Subject: Pagamentos nao funcionam\r\nMessage-ID: <CAJ5x2-orig-0@mail.acme.example>"
            b"\r\n\r\nNenhum pagamento passa desde as 09:10.\r\n"))
        assert first.status_code == 202, first.text
        email_id = first.json()["ticket_id"]
        await c.post(f"/v1/tickets/{email_id}/resolve")
        reply = await c.post("/v1/channels/email/events", headers=RFC822,
                             content=fixture_bytes("email_multipart_reply.eml"))
        assert reply.json() == {"ticket_id": email_id, "created": False}
        em = (await c.get(f"/v1/tickets/{email_id}")).json()
        assert em["state"] == "new" and em["reopen_count"] == 1  # the reply reopened it
        comments = (await c.get(f"/v1/tickets/{email_id}/comments")).json()
        assert comments[0]["author"] == "joao.silva@acme.example"
        assert "fora do ar" in comments[0]["body"] and "escreveu" not in comments[0]["body"]
        assert "Head of Ops" not in comments[0]["body"]  # signature stripped

        greek = await c.post("/v1/channels/email/events", headers=RFC822,
                             content=fixture_bytes("email_html_greek_billing.eml"))
        gr = (await c.get(f"/v1/tickets/{greek.json()['ticket_id']}")).json()
        assert gr["department"] == "billing" and gr["category"] == "billing"
        assert gr["executive"] is True and gr["language"] == "el"
        assert gr["customer"]["name"] == "Νίκος Γεωργίου"
        assert gr["severity_reason"] == "rule:billing-is-low"

        events = await ticket_events(env, 13)
        assert types_for(events, chat.json()["ticket_id"]) == [
            "ticket.created", "ticket.escalation_requested"]
        handoff = [e for e in events if e["type"] == "ticket.escalation_requested"
                   and e["subject"] == chat.json()["ticket_id"]][0]["data"]
        assert (handoff["kind"], handoff["requested_by"]) == ("hierarchical", "chatbot")
        executive = [e["data"] for e in events if e["type"] == "ticket.escalation_requested"
                     and e["subject"] == portal.json()["ticket_id"]]
        assert executive[0]["kind"] == "executive" and executive[0]["executive"] is True
        assert types_for(events, email_id) == [
            "ticket.created", "ticket.resolved", "ticket.customer_replied", "ticket.reopened"]


async def test_monitoring_and_batch(env: Env) -> None:
    settings = ingest_settings(env, pagerduty_routing_keys=[PD_KEY])
    async with running(SPEC, settings) as svc:
        c = svc.client
        group = fixture_json("alertmanager_firing.json")
        fired = await c.post("/v1/channels/monitoring/events", json=group)
        assert fired.status_code == 202, fired.text
        tickets = fired.json()["tickets"]
        assert [t["created"] for t in tickets] == [True, True]
        again = (await c.post("/v1/channels/monitoring/events", json=group)).json()["tickets"]
        assert [t["ticket_id"] for t in again] == [t["ticket_id"] for t in tickets]
        first = (await c.get(f"/v1/tickets/{tickets[0]['ticket_id']}")).json()
        assert first["severity"] == "critical" and first["customer_account_id"] == "acme"
        assert (await c.get(f"/v1/tickets/{tickets[1]['ticket_id']}")).json()["severity"] == "high"
        group["status"] = "resolved"
        group["alerts"] = [{**group["alerts"][0], "status": "resolved",
                            "endsAt": "2026-11-23T08:20:00Z"}]
        await c.post("/v1/channels/monitoring/events", json=group)
        assert (await c.get(f"/v1/tickets/{tickets[0]['ticket_id']}")).json()["state"] == \
            "resolved"
        assert (await c.get(f"/v1/tickets/{tickets[1]['ticket_id']}")).json()["state"] == "new"
        bad = await c.post("/v1/channels/monitoring/events", json={**group, "version": "3"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.version"

        trigger = fixture_json("pagerduty_trigger.json")
        anonymous = {"Authorization": ""}
        pd = await c.post("/v1/channels/monitoring/pagerduty", json=trigger, headers=anonymous)
        assert pd.status_code == 202 and pd.json()["dedup_key"] == "db-primary-replication-lag"
        wrong = await c.post("/v1/channels/monitoring/pagerduty", headers=anonymous,
                             json={**trigger, "routing_key": "nope"})
        assert wrong.status_code == 401
        ack = {**fixture_json("pagerduty_resolve.json"), "event_action": "acknowledge"}
        await c.post("/v1/channels/monitoring/pagerduty", json=ack, headers=anonymous)
        pd_ticket = pd.json()["ticket_id"]
        assert (await c.get(f"/v1/tickets/{pd_ticket}")).json()["state"] == "acknowledged"
        await c.post("/v1/channels/monitoring/pagerduty", headers=anonymous,
                     json=fixture_json("pagerduty_resolve.json"))
        assert (await c.get(f"/v1/tickets/{pd_ticket}")).json()["state"] == "resolved"
        no_key = await c.post("/v1/channels/monitoring/pagerduty", headers=anonymous, json={
            "routing_key": PD_KEY, "event_action": "resolve"})
        assert no_key.status_code == 422
        assert no_key.json()["errors"][0]["field"] == "body.dedup_key"

        # Batch: each event answered on its own; the good ones are stored.
        good = {"external_id": "b-1", "subject": "s", "description": "d", "severity": "low",
                "customer": {"email": "batch@acme.example", "name": "B"}}
        batch = await c.post("/v1/channels/api/events:batch", json={"events": [
            good, {**good, "severity": "urgent"}, {**good, "external_id": "b-2"},
            {**good, "severity": "high"}]})
        assert batch.status_code == 207
        results = batch.json()["results"]
        assert [r["status"] for r in results] == [202, 422, 202, 202]
        assert results[1]["errors"][0]["field"] == "body.events.1.severity"
        # The repeat within the batch updates the ticket its first occurrence opened.
        assert [r.get("created") for r in results] == [True, None, True, False]
        assert results[3]["ticket_id"] == results[0]["ticket_id"]
        repeat = await c.post("/v1/channels/api/events:batch", json={"events": [good]})
        assert repeat.status_code == 200
        assert repeat.json()["results"][0]["ticket_id"] == results[0]["ticket_id"]
        assert (await c.get(f"/v1/tickets/{results[0]['ticket_id']}")).json()["severity"] == \
            "low"
        listing = (await c.get("/v1/tickets", params={"customer_email": "batch@acme.example"}))
        assert len(listing.json()["items"]) == 2
        too_many = await c.post("/v1/channels/api/events:batch",
                                json={"events": [good] * 1001})
        assert too_many.status_code == 422
        unknown = await c.post("/v1/channels/fax/events:batch", json={"events": [good]})
        assert unknown.status_code == 404


async def test_numbers_are_not_times_and_flags_are_not_numbers(pg_env: Env) -> None:
    """Strict where lax validation guessed: a number (or text holding one) read as seconds
    since 1970 became a call placed on 1970-01-01, ``false`` a duration of 0 s, 1 a public
    post."""
    def chat() -> dict[str, object]:
        body = fixture_json("chat_handoff.json")
        body["transcript"][0]["at"] = 0
        return body

    def alerts() -> dict[str, object]:
        body = fixture_json("alertmanager_firing.json")
        body["alerts"][1]["startsAt"] = 1_700_000_000
        return body

    cases = [
        ("phone/events", {**fixture_json("phone_call.json"), "started_at": 0},
         "body.started_at"),
        ("phone/events", {**fixture_json("phone_call.json"), "duration_seconds": False},
         "body.duration_seconds"),
        ("phone/events", {**fixture_json("phone_call.json"), "duration_seconds": "60"},
         "body.duration_seconds"),
        ("phone/events", {**fixture_json("phone_call.json"), "started_at": "1700000000"},
         "body.started_at"),
        ("social/events", {**fixture_json("social_mention.json"), "posted_at": 0},
         "body.posted_at"),
        ("social/events", {**fixture_json("social_mention.json"), "public": 1},
         "body.public"),
        ("chat/events", chat(), "body.transcript.0.at"),
        ("monitoring/events", alerts(), "body.alerts.1.startsAt"),
    ]
    async with running(SPEC, ingest_settings(pg_env)) as svc:
        for path, body, field in cases:
            answer = await svc.client.post(f"/v1/channels/{path}", json=body)
            assert answer.status_code == 422, (field, answer.text)
            assert [e["field"] for e in answer.json()["errors"]] == [field]
        assert (await svc.client.get("/v1/tickets")).json()["items"] == []


async def test_the_longest_conversation_ids_each_channel_allows_are_stored(
        pg_env: Env) -> None:
    """Ids as long as each sender may make them, with the prefix or suffix ingest adds:
    a 255-character PagerDuty dedup key (``pagerduty:`` + key), a 200-character social
    thread id after its platform, and a 200-character id whose ticket closed (the new
    conversation's id takes a suffix). Each was a 500 from PostgreSQL ("value too long")."""
    async with running(SPEC, ingest_settings(pg_env, pagerduty_routing_keys=[PD_KEY])) as svc:
        c = svc.client
        trigger = {**fixture_json("pagerduty_trigger.json"), "dedup_key": "k" * 255}
        pd = await c.post("/v1/channels/monitoring/pagerduty", json=trigger,
                          headers={"Authorization": ""})
        assert pd.status_code == 202, pd.text
        post = {**fixture_json("social_mention.json"), "platform": "instagram",
                "thread_id": "7" * 200}
        social = await c.post("/v1/channels/social/events", json=post)
        assert social.status_code == 202, social.text
        long_id = api_event(external_id="c" * 200)
        first = (await c.post("/v1/channels/api/events", json=long_id)).json()["ticket_id"]
        assert (await c.post(f"/v1/tickets/{first}/resolve")).status_code == 200
        assert (await c.post(f"/v1/tickets/{first}/close")).status_code == 200
        anew = await c.post("/v1/channels/api/events", json=long_id)
        assert anew.status_code == 202, anew.text
        assert anew.json()["created"] and anew.json()["ticket_id"] != first
