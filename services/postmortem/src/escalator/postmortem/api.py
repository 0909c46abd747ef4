"""Postmortem's REST API: post-mortems with their timeline and measures, the review
workflow (``PATCH``), action items and the change log."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from escalator.postmortem import review, service, surveys
from escalator.postmortem.schemas import (
    ActionItemIn,
    ActionItemOut,
    ActionItemPatch,
    ChangeOut,
    PostmortemDetail,
    PostmortemOut,
    PostmortemPage,
    PostmortemPatch,
    PostmortemStatus,
    SurveyIn,
    SurveyOut,
)
from escalator.shared.app import SessionDep
from escalator.shared.auth import require

router = APIRouter(prefix="/v1")
read = require("postmortems:read")
write = require("postmortems:write")
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such post-mortem (or action item)"}}


def actor(request: Request) -> str:
    """Who is changing things: the name of the API key the auth dependency admitted."""
    return str(getattr(request.state, "api_key_name", "unknown"))


@router.get("/postmortems", response_model=PostmortemPage, tags=["postmortems"],
            dependencies=[read])
async def list_postmortems(
    session: SessionDep,
    ticket_id: str | None = None,
    status: PostmortemStatus | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PostmortemPage:
    """Newest first."""
    rows, next_cursor = await service.list_postmortems(
        session, limit=limit, cursor=cursor, ticket_id=ticket_id, status=status,
    )
    return PostmortemPage(items=[PostmortemOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/postmortems/{postmortem_id}", response_model=PostmortemDetail,
            tags=["postmortems"], dependencies=[read], responses=NOT_FOUND)
async def get_postmortem(postmortem_id: str, session: SessionDep) -> PostmortemDetail:
    """The record, its ticket's timeline from every topic, and the measures derived from it.

    Both are assembled at read time, so events that arrived after the close are included.
    """
    return await service.detail(session, postmortem_id)


@router.patch("/postmortems/{postmortem_id}", response_model=PostmortemDetail,
              tags=["postmortems"], dependencies=[write],
              responses={**NOT_FOUND, 409: {"description": "Move not allowed or completed"}})
async def patch_postmortem(postmortem_id: str, body: PostmortemPatch, request: Request,
                           session: SessionDep) -> PostmortemDetail:
    """Edit the review and/or move it (draft -> in_review -> completed).

    Completion needs a root cause from the taxonomy plus text, and at least one action
    item or ``no_action_items: true``; the reviewer is the API key's name.
    """
    await review.update(session, postmortem_id, body, actor=actor(request))
    await session.flush()
    return await service.detail(session, postmortem_id)


@router.get("/postmortems/{postmortem_id}/action-items", response_model=list[ActionItemOut],
            tags=["action items"], dependencies=[read], responses=NOT_FOUND)
async def list_action_items(postmortem_id: str, session: SessionDep) -> list[ActionItemOut]:
    await service.get(session, postmortem_id)
    return [review.item_out(i) for i in await review.items(session, postmortem_id)]


@router.post("/postmortems/{postmortem_id}/action-items", response_model=ActionItemOut,
             status_code=201, tags=["action items"], dependencies=[write], responses=NOT_FOUND)
async def create_action_item(
    postmortem_id: str, body: ActionItemIn, request: Request, session: SessionDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ActionItemOut:
    """Add an action item; a retry with the same ``Idempotency-Key`` creates nothing new."""
    item = await review.add_item(session, postmortem_id, body, actor=actor(request),
                                 idempotency_key=idempotency_key)
    await session.flush()
    return review.item_out(item)


@router.patch("/postmortems/{postmortem_id}/action-items/{item_id}",
              response_model=ActionItemOut, tags=["action items"], dependencies=[write],
              responses=NOT_FOUND)
async def patch_action_item(postmortem_id: str, item_id: str, body: ActionItemPatch,
                            request: Request, session: SessionDep) -> ActionItemOut:
    item = await review.update_item(session, postmortem_id, item_id, body,
                                    actor=actor(request))
    await session.flush()
    return review.item_out(item)


@router.get("/postmortems/{postmortem_id}/changes", response_model=list[ChangeOut],
            tags=["postmortems"], dependencies=[read], responses=NOT_FOUND)
async def list_changes(postmortem_id: str, session: SessionDep) -> list[ChangeOut]:
    """Every recorded change to the review and its action items, oldest first."""
    await service.get(session, postmortem_id)
    return [ChangeOut(id=c.id, at=c.at, actor=c.actor, target=c.target, field=c.field,
                      old=_json(c.old), new=_json(c.new))
            for c in await review.changes(session, postmortem_id)]


def _json(text: str | None) -> object:
    return None if text is None else json.loads(text)


surveys_router = APIRouter(prefix="/v1", tags=["surveys"])


@surveys_router.post(
    "/surveys/{ticket_id}", response_model=SurveyOut, status_code=201,
    responses={403: {"description": "Forged token, or for another ticket"},
               409: {"description": "Already answered"}, 410: {"description": "Expired"}},
)
async def submit_survey(ticket_id: str, body: SurveyIn, session: SessionDep,
                        token: Annotated[str, Query(min_length=1, max_length=200)]
                        ) -> SurveyOut:
    """The customer's score (1-5) and comment, once per ticket. No API key: the signed,
    expiring ``token`` from the survey link is the credential."""
    return SurveyOut.model_validate(await surveys.submit(session, ticket_id, token, body))
