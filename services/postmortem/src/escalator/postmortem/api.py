"""Postmortem's REST API: read post-mortems with their timeline and measures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from escalator.postmortem import service
from escalator.postmortem.schemas import (
    PostmortemDetail,
    PostmortemOut,
    PostmortemPage,
    PostmortemStatus,
)
from escalator.shared.app import SessionDep
from escalator.shared.auth import require

router = APIRouter(prefix="/v1")
read = require("postmortems:read")


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
    return PostmortemPage(items=[PostmortemOut.model_validate(r) for r in rows],
                          next_cursor=next_cursor)


@router.get("/postmortems/{postmortem_id}", response_model=PostmortemDetail,
            tags=["postmortems"], dependencies=[read],
            responses={404: {"description": "No such post-mortem"}})
async def get_postmortem(postmortem_id: str, session: SessionDep) -> PostmortemDetail:
    """The record, its ticket's timeline from every topic, and the measures derived from it.

    Both are assembled at read time, so events that arrived after the close are included.
    """
    return await service.detail(session, postmortem_id)
