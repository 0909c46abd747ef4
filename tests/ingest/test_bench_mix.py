"""The pipeline benchmark's mixed channel events are all accepted, each as the ticket the
benchmark expects: a mix that ingest refused would measure error paths, not the pipeline."""

from __future__ import annotations

from bench.pipeline import _ticket_ids, channel_event
from escalator.ingest.main import SPEC
from tests.ingest.helpers import ingest_settings
from tests.support import Env, running


async def test_every_event_of_the_mix_becomes_a_ticket(pg_env: Env) -> None:
    async with running(SPEC, ingest_settings(pg_env)) as svc:
        paths, tickets = set(), set()
        for n in range(20):  # one full cycle of the mix
            path, body, content_type = channel_event(n, "mix")
            answer = await svc.client.post(path, content=body,
                                           headers={"Content-Type": content_type})
            assert answer.status_code == 202, (path, answer.text)
            paths.add(path)
            tickets.update(_ticket_ids(answer.content))
        assert len(paths) == 7 and len(tickets) == 20
        breach = (await svc.client.get("/v1/tickets", params={"limit": 100})).json()["items"]
        assert sum(1 for t in breach if t["category"] == "bench-breach") == 2
