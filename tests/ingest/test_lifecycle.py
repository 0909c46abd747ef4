"""The ticket lifecycle as help-desk frontends drive it, and the events each step emits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from escalator.ingest.main import SPEC
from escalator.shared.events import Holder, TicketAssigned
from tests.ingest.helpers import api_event, ingest_settings, ticket_events, types_for
from tests.support import Env, produce, running, wait_until


def assigned_event(ticket_id: str, agent: str) -> bytes:
    from escalator.shared.events import CloudEvent

    data = TicketAssigned(
        ticket_id=ticket_id, severity="high", path="standard", level=0,
        level_name="L1 front line", strategy="least_loaded", reason="least loaded",
        assignee=Holder(agent_id=agent, name=agent.title(), email=f"{agent}@helpdesk.example",
                        team="support-l1"),
    )
    return CloudEvent.wrap(data, source="/escalator/router").model_dump_json().encode()


async def test_full_lifecycle_with_comments_reopen_and_conflicts(env: Env) -> None:
    async with running(SPEC, ingest_settings(env)) as svc:
        c = svc.client
        created = await c.post("/v1/channels/api/events", json=api_event())
        tid = created.json()["ticket_id"]
        ticket = (await c.get(f"/v1/tickets/{tid}")).json()
        assert (ticket["status"], ticket["state"]) == ("open", "new")
        # The directory knows ops@acme.example: contacts ride along on the ticket.
        assert ticket["customer_account_id"] == "acme"
        assert ticket["customer"]["csm"]["email"] == "carla@helpdesk.example"
        assert ticket["customer_tier"] == "enterprise" and ticket["language"] == "pt"

        # The router's ticket.assigned is projected: state and assignee.
        await produce(env.broker.bootstrap, f"{env.prefix}assignments",
                      assigned_event(tid, "alice"), key=tid.encode())

        async def is_assigned() -> bool:
            t = (await c.get(f"/v1/tickets/{tid}")).json()
            return t["state"] == "assigned" and t["assignee_id"] == "alice"

        await wait_until(is_assigned, timeout=30, message="ticket.assigned not projected")
        mine = (await c.get("/v1/tickets", params={"assignee": "alice"})).json()["items"]
        assert [t["id"] for t in mine] == [tid]

        # Waiting on the customer needs an acknowledged ticket.
        early = await c.post(f"/v1/tickets/{tid}/wait-on-customer")
        assert early.status_code == 409 and early.json()["ticket_state"] == "assigned"
        assert early.headers["content-type"] == "application/problem+json"
        ack = (await c.post(f"/v1/tickets/{tid}/acknowledge")).json()
        assert (ack["state"], ack["status"]) == ("acknowledged", "acknowledged")
        waiting = (await c.post(f"/v1/tickets/{tid}/wait-on-customer")).json()
        assert (waiting["state"], waiting["status"]) == ("waiting_on_customer", "acknowledged")

        note = await c.post(f"/v1/tickets/{tid}/comments", json={
            "author_type": "agent", "author": "alice", "public": False,
            "body": "Acquirer confirms 502s on their side."})
        assert note.status_code == 201 and note.json()["public"] is False
        reply = await c.post(f"/v1/tickets/{tid}/comments", json={
            "author_type": "customer", "author": "ops@acme.example",
            "body": "Here is the order id: 48213."})
        assert reply.status_code == 201
        assert (await c.get(f"/v1/tickets/{tid}")).json()["state"] == "acknowledged"
        internal = await c.post(f"/v1/tickets/{tid}/comments", json={
            "author_type": "customer", "author": "x@acme.example", "public": False, "body": "x"})
        assert internal.status_code == 422
        assert internal.json()["errors"][0]["field"] == "body.public"

        assert (await c.post(f"/v1/tickets/{tid}/resolve")).json()["state"] == "resolved"
        # A customer reply to a resolved ticket reopens it.
        await c.post(f"/v1/tickets/{tid}/comments", json={
            "author_type": "customer", "author": "ops@acme.example", "body": "Still failing!"})
        reopened = (await c.get(f"/v1/tickets/{tid}")).json()
        assert (reopened["state"], reopened["reopen_count"]) == ("acknowledged", 1)
        assert reopened["resolved_at"] is None
        await c.post(f"/v1/tickets/{tid}/resolve")
        assert (await c.post(f"/v1/tickets/{tid}/reopen")).json()["state"] == "acknowledged"
        assert (await c.post(f"/v1/tickets/{tid}/reopen")).status_code == 200  # retry: no-op
        assert (await c.post(f"/v1/tickets/{tid}/close")).json()["state"] == "closed"
        for action in ("reopen", "resolve", "acknowledge"):
            refused = await c.post(f"/v1/tickets/{tid}/{action}")
            assert refused.status_code == 409, action
        closed_comment = await c.post(f"/v1/tickets/{tid}/comments", json={
            "author_type": "agent", "author": "alice", "body": "late"})
        assert closed_comment.status_code == 409

        comments = (await c.get(f"/v1/tickets/{tid}/comments")).json()
        assert [x["author_type"] for x in comments] == ["agent", "customer", "customer"]
        public = (await c.get(f"/v1/tickets/{tid}/comments", params={"public_only": True})).json()
        assert len(public) == 2

        events = await ticket_events(env, 11)
        assert types_for(events, tid) == [
            "ticket.created", "ticket.acknowledged", "ticket.waiting_on_customer",
            "ticket.commented", "ticket.customer_replied", "ticket.resolved",
            "ticket.customer_replied", "ticket.reopened", "ticket.resolved",
            "ticket.reopened", "ticket.closed",
        ]
        first = events[0]["data"]
        assert first["customer"]["account_executive"]["name"] == "Ana Reis"
        assert first["assignee_id"] is None and events[-1]["data"]["assignee_id"] == "alice"
        assert events[4]["data"]["comment"]["body"] == "Here is the order id: 48213."
        assert events[3]["data"]["comment"]["public"] is False


async def test_link_filters_and_idempotent_comments(env: Env) -> None:
    async with running(SPEC, ingest_settings(env)) as svc:
        c = svc.client
        ids = []
        for n in range(3):
            r = await c.post("/v1/channels/api/events", json=api_event(
                external_id=f"inc-{n}", customer={"email": f"u{n}@other.example", "name": "U"}))
            ids.append(r.json()["ticket_id"])
        parent, child, other = ids
        linked = await c.post(f"/v1/tickets/{child}/link", json={"parent_id": parent})
        assert linked.status_code == 200 and linked.json()["parent_id"] == parent
        assert (await c.post(f"/v1/tickets/{child}/link", json={"parent_id": parent})
                ).status_code == 200
        self_link = await c.post(f"/v1/tickets/{other}/link", json={"parent_id": other})
        assert self_link.status_code == 422 and self_link.json()["errors"][0]["field"] == \
            "body.parent_id"
        nested = await c.post(f"/v1/tickets/{other}/link", json={"parent_id": child})
        assert nested.status_code == 409
        missing = await c.post(f"/v1/tickets/{other}/link", json={"parent_id": "nope"})
        assert missing.status_code == 422
        children = (await c.get("/v1/tickets", params={"parent_id": parent})).json()["items"]
        assert [t["id"] for t in children] == [child]

        now = datetime.now(UTC)
        window = {"created_after": (now - timedelta(minutes=5)).isoformat(),
                  "created_before": (now + timedelta(minutes=5)).isoformat()}
        assert len((await c.get("/v1/tickets", params=window)).json()["items"]) == 3
        future = {"created_after": (now + timedelta(minutes=5)).isoformat()}
        assert (await c.get("/v1/tickets", params=future)).json()["items"] == []
        for field, value in (("created_after", "2026-11-23T08:00:00"),
                             ("created_before", "0.5"), ("created_after", "1700000000")):
            refused = await c.get("/v1/tickets", params={field: value})
            assert refused.status_code == 422, (field, value)
            assert [e["field"] for e in refused.json()["errors"]] == [f"query.{field}"]
        assert (await c.get("/v1/tickets", params={"state": "bogus"})).status_code == 422

        headers = {"Idempotency-Key": "comment-7"}
        body = {"author_type": "agent", "author": "bruno", "body": "Looking into it."}
        first = await c.post(f"/v1/tickets/{other}/comments", json=body, headers=headers)
        again = await c.post(f"/v1/tickets/{other}/comments", json=body, headers=headers)
        assert again.status_code == 201 and again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        reused = await c.post(f"/v1/tickets/{other}/comments", json={**body, "body": "x"},
                              headers=headers)
        assert reused.status_code == 422
        assert len((await c.get(f"/v1/tickets/{other}/comments")).json()) == 1

        events = await ticket_events(env, 5)
        linked_events = [e for e in events if e["type"] == "ticket.linked"]
        assert len(linked_events) == 1 and linked_events[0]["data"]["parent_id"] == parent
        assert json.loads(json.dumps(events))  # all plain JSON


async def test_a_run_of_assignments_projects_as_applied_in_order(env: Env) -> None:
    """The consumer projects a poll's ``ticket.assigned`` together: per ticket, the last
    holder stays, and a new ticket is assigned if any of them named one."""
    from escalator.ingest import lifecycle

    async with running(SPEC, ingest_settings(env)) as svc:
        c = svc.client
        new, passed, acked = [(await c.post("/v1/channels/api/events", json=api_event(
            external_id=f"run-{n}"))).json()["ticket_id"] for n in range(3)]
        await c.post(f"/v1/tickets/{acked}/acknowledge")
        before = (await c.get(f"/v1/tickets/{new}")).json()["updated_at"]
        async with svc.runtime.sessionmaker() as session, session.begin():
            await lifecycle.assigned(session, [
                (new, "alice"), (passed, "alice"), (new, "bob"), (acked, "carol"),
                (passed, None), (new, None), (new, "dave")])
        tickets = {t: (await c.get(f"/v1/tickets/{t}")).json() for t in (new, passed, acked)}
    assert [(tickets[t]["state"], tickets[t]["assignee_id"]) for t in (new, passed, acked)] \
        == [("assigned", "dave"), ("assigned", None), ("acknowledged", "carol")]
    assert tickets[new]["updated_at"] >= before
