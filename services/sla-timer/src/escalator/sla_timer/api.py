"""sla-timer's REST API: a ticket's clocks, and the policies and calendars that run them.

Request bodies are the same pydantic specs as the YAML file's entries, so a body that
the file would refuse is refused here too (422 naming the field), before anything is
stored. Editing a policy or calendar never moves a clock already running: clocks copy
their targets when they start (calendars are looked up by id, so an edited calendar
applies from the next deadline computed).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import func, select

from escalator.shared.app import SessionDep
from escalator.shared.auth import require
from escalator.shared.events import utcnow
from escalator.shared.problems import Problem
from escalator.sla_timer import service
from escalator.sla_timer.calendars import (
    ALWAYS,
    CalendarSpec,
    calendar_of,
    list_calendars,
    save_calendar,
)
from escalator.sla_timer.models import ACKNOWLEDGEMENT, SlaCalendar, SlaPolicy
from escalator.sla_timer.policies import PolicySpec, list_policies
from escalator.sla_timer.schemas import (
    CalendarList,
    CalendarOut,
    ClockOut,
    PolicyList,
    PolicyOut,
    TicketClocks,
)

router = APIRouter(prefix="/v1")
read = require("sla:read")
write = require("sla:write")


@router.get("/tickets/{ticket_id}/clocks", response_model=TicketClocks, tags=["clocks"],
            dependencies=[read], summary="A ticket's SLA clocks",
            responses={404: {"description": "No clock for this ticket (unknown, or no "
                                            "policy matched it)"}})
async def ticket_clocks(ticket_id: str, session: SessionDep) -> TicketClocks:
    clocks = (await service.clocks_of_many(session, [ticket_id])).get(ticket_id, [])
    if not clocks:
        raise Problem(404, "Not Found", f"no SLA clocks for ticket {ticket_id}")
    now = utcnow()
    out = []
    for clock in clocks:
        calendar = ALWAYS if clock.name == ACKNOWLEDGEMENT else await calendar_of(
            session, clock.calendar_id)
        out.append(ClockOut.of(clock, calendar, now))
    return TicketClocks(ticket_id=ticket_id, clocks=out)


# -- policies --------------------------------------------------------------------------

@router.get("/sla-policies", response_model=PolicyList, tags=["policies"],
            dependencies=[read], summary="SLA policies in match order")
async def sla_policies(session: SessionDep) -> PolicyList:
    return PolicyList(items=[PolicyOut.of(p) for p in await list_policies(session)])


@router.get("/sla-policies/{policy_id}", response_model=PolicyOut, tags=["policies"],
            dependencies=[read])
async def get_policy(policy_id: str, session: SessionDep) -> PolicyOut:
    return PolicyOut.of(await _policy(session, policy_id))


@router.post("/sla-policies", response_model=PolicyOut, status_code=201, tags=["policies"],
             dependencies=[write], summary="Add a policy (tried after the existing ones)")
async def create_policy(spec: PolicySpec, session: SessionDep) -> PolicyOut:
    if await session.get(SlaPolicy, spec.id) is not None:
        raise Problem(409, "Conflict", f"policy {spec.id} exists; PUT to replace it")
    await _check_calendar(session, spec)
    position = (await session.scalar(select(func.max(SlaPolicy.position)))) or 0
    policy = SlaPolicy(**spec.row(), position=position + 1)
    session.add(policy)
    await session.flush()
    return PolicyOut.of(policy)


@router.put("/sla-policies/{policy_id}", response_model=PolicyOut, tags=["policies"],
            dependencies=[write], summary="Replace a policy (keeps its position)")
async def replace_policy(policy_id: str, spec: PolicySpec, session: SessionDep) -> PolicyOut:
    if spec.id != policy_id:
        raise Problem(422, "Unprocessable Content", "id: must match the URL",
                      errors=[{"field": "id", "message": "must match the URL"}])
    policy = await _policy(session, policy_id)
    await _check_calendar(session, spec)
    for name, value in spec.row().items():
        setattr(policy, name, value)
    await session.flush()
    return PolicyOut.of(policy)


@router.delete("/sla-policies/{policy_id}", status_code=204, tags=["policies"],
               dependencies=[write], summary="Remove a policy (running clocks keep going)")
async def delete_policy(policy_id: str, session: SessionDep) -> Response:
    await session.delete(await _policy(session, policy_id))
    return Response(status_code=204)


async def _policy(session: SessionDep, policy_id: str) -> SlaPolicy:
    policy = await session.get(SlaPolicy, policy_id)
    if policy is None:
        raise Problem(404, "Not Found", f"no SLA policy {policy_id}")
    return policy


async def _check_calendar(session: SessionDep, spec: PolicySpec) -> None:
    if spec.calendar is not None and await session.get(SlaCalendar, spec.calendar) is None:
        raise Problem(422, "Unprocessable Content", f"calendar: no calendar {spec.calendar}",
                      errors=[{"field": "calendar", "message": "unknown calendar"}])


# -- calendars -------------------------------------------------------------------------

@router.get("/calendars", response_model=CalendarList, tags=["calendars"],
            dependencies=[read])
async def calendars(session: SessionDep) -> CalendarList:
    return CalendarList(items=[CalendarOut.of(c) for c in await list_calendars(session)])


@router.get("/calendars/{calendar_id}", response_model=CalendarOut, tags=["calendars"],
            dependencies=[read])
async def get_calendar(calendar_id: str, session: SessionDep) -> CalendarOut:
    return CalendarOut.of(await _calendar(session, calendar_id))


@router.post("/calendars", response_model=CalendarOut, status_code=201, tags=["calendars"],
             dependencies=[write])
async def create_calendar(spec: CalendarSpec, session: SessionDep) -> CalendarOut:
    if await session.get(SlaCalendar, spec.id) is not None:
        raise Problem(409, "Conflict", f"calendar {spec.id} exists; PUT to replace it")
    row = await save_calendar(session, spec)
    await session.flush()
    return CalendarOut.of(row)


@router.put("/calendars/{calendar_id}", response_model=CalendarOut, tags=["calendars"],
            dependencies=[write])
async def replace_calendar(calendar_id: str, spec: CalendarSpec,
                           session: SessionDep) -> CalendarOut:
    if spec.id != calendar_id:
        raise Problem(422, "Unprocessable Content", "id: must match the URL",
                      errors=[{"field": "id", "message": "must match the URL"}])
    await _calendar(session, calendar_id)
    row = await save_calendar(session, spec)
    await session.flush()
    return CalendarOut.of(row)


@router.delete("/calendars/{calendar_id}", status_code=204, tags=["calendars"],
               dependencies=[write], summary="Remove a calendar no policy uses")
async def delete_calendar(calendar_id: str, session: SessionDep) -> Response:
    row = await _calendar(session, calendar_id)
    users = (await session.scalars(
        select(SlaPolicy.id).where(SlaPolicy.calendar_id == calendar_id))).all()
    if users:
        raise Problem(409, "Conflict", f"calendar {calendar_id} is used by policies "
                      f"{', '.join(sorted(users))}")
    await session.delete(row)
    return Response(status_code=204)


async def _calendar(session: SessionDep, calendar_id: str) -> SlaCalendar:
    row = await session.get(SlaCalendar, calendar_id)
    if row is None:
        raise Problem(404, "Not Found", f"no calendar {calendar_id}")
    return row
