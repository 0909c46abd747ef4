"""Rules and templates over REST: validated on save, stored only when valid.

Rules: ``GET/POST /v1/rules``, ``GET/PUT/DELETE /v1/rules/{id}`` (PUT creates or
replaces). Templates: ``GET /v1/templates`` lists the effective set (shipped and
edited), ``PUT/DELETE /v1/templates/{event}/{audience}/{channel}/{language}``; deleting
an edited template restores the shipped one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Body, Path, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import CursorResult, delete, select

from escalator.notifier import templates
from escalator.notifier.catalog import SHIPPED
from escalator.notifier.models import RuleRow, TemplateRow, WebhookTarget
from escalator.notifier.rules import EventKind, Rule
from escalator.notifier.service import upsert_rules
from escalator.shared.app import SessionDep
from escalator.shared.auth import require
from escalator.shared.events import utcnow
from escalator.shared.problems import Problem

router = APIRouter(prefix="/v1")
read = require("notifier:read")
write = require("notifier:write")


class RuleOut(Rule):
    created_at: datetime
    updated_at: datetime


class RuleList(BaseModel):
    items: list[RuleOut]


def _out(row: RuleRow) -> RuleOut:
    return RuleOut.model_validate({**row.definition, "created_at": row.created_at,
                                   "updated_at": row.updated_at})


async def _check_target(session: SessionDep, rule: Rule) -> None:
    if rule.channel == "webhook" and await session.get(WebhookTarget, rule.target) is None:
        raise Problem(422, "Request validation failed", f"target: no webhook target "
                      f"{rule.target}", errors=[{"field": "target",
                                                 "message": "unknown webhook target"}])


@router.get("/rules", response_model=RuleList, tags=["rules"], dependencies=[read])
async def list_rules(session: SessionDep) -> RuleList:
    rows = (await session.scalars(select(RuleRow).order_by(RuleRow.id))).all()
    return RuleList(items=[_out(r) for r in rows])


@router.get("/rules/{rule_id}", response_model=RuleOut, tags=["rules"], dependencies=[read])
async def get_rule(rule_id: str, session: SessionDep) -> RuleOut:
    row = await session.get(RuleRow, rule_id)
    if row is None:
        raise Problem(404, "Not Found", f"no rule {rule_id}")
    return _out(row)


@router.post("/rules", response_model=RuleOut, status_code=201, tags=["rules"],
             dependencies=[write])
async def create_rule(rule: Rule, session: SessionDep) -> RuleOut:
    if await session.get(RuleRow, rule.id) is not None:
        raise Problem(409, "Conflict", f"rule {rule.id} exists; PUT replaces it")
    await _check_target(session, rule)
    await upsert_rules(session, [rule])
    return await get_rule(rule.id, session)


@router.put("/rules/{rule_id}", response_model=RuleOut, tags=["rules"], dependencies=[write])
async def put_rule(rule_id: str, session: SessionDep,
                   body: Annotated[dict[str, Any], Body()]) -> RuleOut:
    try:
        rule = Rule.model_validate({**body, "id": rule_id})
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                  for e in exc.errors()]
        raise Problem(422, "Request validation failed",
                      "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                      errors=errors) from exc
    await _check_target(session, rule)
    await upsert_rules(session, [rule])
    return await get_rule(rule.id, session)


@router.delete("/rules/{rule_id}", status_code=204, tags=["rules"], dependencies=[write])
async def delete_rule(rule_id: str, session: SessionDep) -> Response:
    deleted = await session.execute(delete(RuleRow).where(RuleRow.id == rule_id))
    if cast(CursorResult[Any], deleted).rowcount == 0:
        raise Problem(404, "Not Found", f"no rule {rule_id}")
    return Response(status_code=204)


Audience = Literal["customer", "internal"]
TemplateChannel = Literal["email"]
Language = Annotated[str, Path(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]
TemplateEvent = EventKind | Literal["default"]


class TemplateIn(BaseModel):
    subject: str | None = Field(default=None, max_length=templates.MAX_TEMPLATE)
    body: str = Field(min_length=1, max_length=templates.MAX_TEMPLATE)


class TemplateOut(TemplateIn):
    event: str
    audience: str
    channel: str
    language: str
    source: Literal["shipped", "edited"]


class TemplateList(BaseModel):
    items: list[TemplateOut]


@router.get("/templates", response_model=TemplateList, tags=["templates"],
            dependencies=[read])
async def list_templates(session: SessionDep) -> TemplateList:
    edited = {(r.event, r.audience, r.channel, r.language): r
              for r in (await session.scalars(select(TemplateRow))).all()}
    items = [TemplateOut(event=k[0], audience=k[1], channel=k[2], language=k[3],
                         subject=s, body=b, source="shipped")
             for k, (s, b) in SHIPPED.items() if k not in edited]
    items += [TemplateOut(event=k[0], audience=k[1], channel=k[2], language=k[3],
                          subject=r.subject, body=r.body, source="edited")
              for k, r in edited.items()]
    return TemplateList(items=sorted(items, key=lambda t: (t.event, t.audience, t.channel,
                                                           t.language)))


@router.put("/templates/{event}/{audience}/{channel}/{language}", response_model=TemplateOut,
            tags=["templates"], dependencies=[write])
async def put_template(event: TemplateEvent, audience: Audience, channel: TemplateChannel,
                       language: Language, template: TemplateIn,
                       session: SessionDep) -> TemplateOut:
    errors = [{"field": name, "message": message}
              for name, source in (("subject", template.subject), ("body", template.body))
              if (message := templates.validate(name, source)) is not None]
    if errors:
        raise Problem(422, "Invalid template", "; ".join(e["message"] for e in errors),
                      errors=errors)
    row = await session.get(TemplateRow, (event, audience, channel, language))
    if row is None:
        row = TemplateRow(event=event, audience=audience, channel=channel, language=language,
                          subject=template.subject, body=template.body, updated_at=utcnow())
        session.add(row)
    else:
        row.subject, row.body, row.updated_at = template.subject, template.body, utcnow()
    return TemplateOut(event=event, audience=audience, channel=channel, language=language,
                       subject=template.subject, body=template.body, source="edited")


@router.delete("/templates/{event}/{audience}/{channel}/{language}", status_code=204,
               tags=["templates"], dependencies=[write])
async def delete_template(event: str, audience: str, channel: str, language: str,
                          session: SessionDep) -> Response:
    result = await session.execute(delete(TemplateRow).where(
        TemplateRow.event == event, TemplateRow.audience == audience,
        TemplateRow.channel == channel, TemplateRow.language == language))
    if cast(CursorResult[Any], result).rowcount == 0:
        raise Problem(404, "Not Found", "no edited template with that key")
    return Response(status_code=204)
