"""sla-timer's REST API: a ticket's clocks and the policies that start them."""

from __future__ import annotations

from fastapi import APIRouter

from escalator.shared.app import SessionDep
from escalator.shared.auth import require
from escalator.shared.events import utcnow
from escalator.shared.problems import Problem
from escalator.sla_timer import service
from escalator.sla_timer.policies import list_policies
from escalator.sla_timer.schemas import ClockOut, PolicyList, PolicyOut, TicketClocks

router = APIRouter(prefix="/v1")
read = require("sla:read")


@router.get("/tickets/{ticket_id}/clocks", response_model=TicketClocks, tags=["clocks"],
            dependencies=[read], summary="A ticket's SLA clocks",
            responses={404: {"description": "No clock for this ticket (unknown, or no "
                                            "policy matched it)"}})
async def ticket_clocks(ticket_id: str, session: SessionDep) -> TicketClocks:
    clocks = await service.clocks_of(session, ticket_id)
    if not clocks:
        raise Problem(404, "Not Found", f"no SLA clocks for ticket {ticket_id}")
    now = utcnow()
    return TicketClocks(ticket_id=ticket_id, clocks=[ClockOut.of(c, now) for c in clocks])


@router.get("/sla-policies", response_model=PolicyList, tags=["policies"],
            dependencies=[read], summary="SLA policies in match order")
async def sla_policies(session: SessionDep) -> PolicyList:
    return PolicyList(items=[PolicyOut.of(p) for p in await list_policies(session)])
