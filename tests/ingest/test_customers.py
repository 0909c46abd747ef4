"""The customer directory over REST, matching by phone/handle, a manager request after a
resolution, and the channel examples in the OpenAPI document."""

from __future__ import annotations

from sqlalchemy import text

from escalator.ingest.main import SPEC
from escalator.shared.db import make_sessionmaker
from tests.ingest.helpers import fixture_json, ingest_settings, ticket_events, types_for
from tests.support import Env, running

ACCOUNT = {
    "id": "pastificio", "name": "Pastificio Bianchi", "email": "it@pastificio.example",
    "tier": "enterprise", "language": "it", "phones": ["+39 02 555 0101"],
    "handles": ["instagram:@pastificio"],
    "csm": {"name": "Marco Rossi", "email": "marco@helpdesk.example"},
    "executive_sponsor": {"name": "Elena Papadopoulou", "email": "elena@helpdesk.example"},
}


async def test_directory_matching_and_manager_request(pg_env: Env) -> None:
    async with running(SPEC, ingest_settings(pg_env)) as svc:
        c = svc.client
        put = await c.put("/v1/customers/pastificio", json=ACCOUNT)
        assert put.status_code == 200 and put.json()["csm"]["name"] == "Marco Rossi"
        mismatch = await c.put("/v1/customers/other", json=ACCOUNT)
        assert mismatch.status_code == 422 and mismatch.json()["errors"][0]["field"] == "body.id"
        stolen = await c.put("/v1/customers/thief", json={
            **ACCOUNT, "id": "thief", "email": "x@thief.example", "phones": [],
            "handles": ["instagram:@pastificio"]})
        assert stolen.status_code == 409
        bad = await c.put("/v1/customers/pastificio", json={**ACCOUNT, "email": "nope"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.email"
        ids = [a["id"] for a in (await c.get("/v1/customers")).json()]
        assert {"acme", "olympus", "pastificio"} <= set(ids)

        call = {**fixture_json("phone_call.json"), "call_id": "CA-it-1",
                "caller_number": "+390255501 01", "caller_name": None,
                "notes": "Il cliente chiede lo stato dell'ordine.", "subject": None}
        made = await c.post("/v1/channels/phone/events", json=call)
        ticket = (await c.get(f"/v1/tickets/{made.json()['ticket_id']}")).json()
        assert ticket["customer_account_id"] == "pastificio"
        assert ticket["customer"]["executive_sponsor"]["name"] == "Elena Papadopoulou"
        assert (ticket["language"], ticket["customer_tier"]) == ("it", "enterprise")

        form = {**fixture_json("portal_submission.json"), "description": "Fatura errada."}
        opened = (await c.post("/v1/channels/portal/events", json=form)).json()
        await c.post(f"/v1/tickets/{opened['ticket_id']}/resolve")
        again = await c.post("/v1/channels/portal/events", json={
            **form, "description": "Não resolveu. Quero falar com o gerente."})
        assert again.json() == {"ticket_id": opened["ticket_id"], "created": False}
        events = await ticket_events(pg_env, 6)
        assert types_for(events, opened["ticket_id"]) == [
            "ticket.created", "ticket.resolved", "ticket.customer_replied", "ticket.reopened",
            "ticket.escalation_requested"]
        request = [e for e in events if e["subject"] == opened["ticket_id"]][-1]["data"]
        assert (request["kind"], request["requested_by"]) == ("hierarchical", "customer")

        assert (await c.delete("/v1/customers/pastificio")).status_code == 204
        assert (await c.get("/v1/customers/pastificio")).status_code == 404

        spec = (await c.get("/openapi.json")).json()
        for channel in ("api", "portal", "chat", "phone", "social"):
            body = spec["paths"][f"/v1/channels/{channel}/events"]["post"]["requestBody"]
            schema = body["content"]["application/json"]["schema"]
            ref = schema["$ref"].split("/")[-1]
            assert spec["components"]["schemas"][ref].get("examples"), channel
        email = spec["paths"]["/v1/channels/email/events"]["post"]["requestBody"]["content"]
        assert "Message-ID" in email["message/rfc822"]["example"]


async def test_the_account_lookup_probes_indexes_even_with_plans_made_on_empty_tables(
    pg_env: Env,
) -> None:
    """Every ingest transaction looks its senders up by identity key (and account id).
    One query joining both ways (``key IN ... OR id IN ...``) read the whole directory
    each time; a statement prepared while the tables were empty keeps its plan until
    they are analysed, so the plan made then must already be index probes."""
    from escalator.ingest import customers
    from escalator.shared.db import make_engine
    from escalator.shared.migrations import upgrade
    from tests.shared.test_db import _plan_after_growth, _probes

    settings = ingest_settings(pg_env)
    engine = make_engine(settings)
    try:
        await upgrade(engine, settings, SPEC.migrations)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM customer_identities"))
            await conn.execute(text("DELETE FROM customers"))
            grow = ("WITH made AS (INSERT INTO customers (id, name, email, tier, data, "
                    "created_at, updated_at) SELECT 'c' || g, 'C', 'c' || g || '@x.example', "
                    "'standard', '{}', now(), now() FROM generate_series(1, 5000) AS g "
                    "RETURNING id) INSERT INTO customer_identities (key, customer_id) "
                    "SELECT 'email:' || id || '@x.example', id FROM made")
            for query, empty, full in (
                (customers._by_key("postgresql"), "ARRAY['email:a@x']",
                 "ARRAY['email:c7@x.example', 'email:c9@x.example']"),
                (customers._by_id("postgresql"), "ARRAY['a']", "ARRAY['c7', 'c9']"),
            ):
                plan = await _plan_after_growth(conn, query, empty, full, grow)
                assert _probes(plan), plan
                await conn.execute(text("DELETE FROM customer_identities"))
                await conn.execute(text("DELETE FROM customers"))
        async with engine.begin() as conn:
            await conn.execute(text(grow))
        async with make_sessionmaker(engine)() as session:
            accounts, owner = await customers.find(
                session, ["email:c7@x.example", "phone:+1"], ["c9", "nobody"])
        assert sorted(accounts) == ["c7", "c9"] and owner == {"email:c7@x.example": "c7"}
    finally:
        await engine.dispose()
