"""Notifier's REST API: the delivery log and the configured webhook targets."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from escalator.notifier import service
from escalator.notifier.models import DeliveryStatus
from escalator.notifier.schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookTargetList,
    WebhookTargetOut,
)
from escalator.shared.app import SessionDep
from escalator.shared.auth import require

router = APIRouter(prefix="/v1")
read = require("notifier:read")


@router.get("/deliveries", response_model=DeliveryPage, tags=["deliveries"],
            dependencies=[read], summary="The delivery log, newest first")
async def list_deliveries(
    session: SessionDep,
    ticket_id: str | None = None,
    status: Annotated[DeliveryStatus | None, Query(description="The outcome")] = None,
    channel: Literal["email", "webhook"] | None = None,
    recipient: Annotated[str | None, Query(
        max_length=2000, description="An email address (any case) or a webhook URL")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryPage:
    rows, next_cursor = await service.list_deliveries(
        session, limit=limit, cursor=cursor, ticket_id=ticket_id, status=status,
        channel=channel, recipient=recipient,
    )
    return DeliveryPage(items=[DeliveryOut.model_validate(r) for r in rows],
                        next_cursor=next_cursor)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryOut, tags=["deliveries"],
            dependencies=[read])
async def get_delivery(delivery_id: str, session: SessionDep) -> DeliveryOut:
    return DeliveryOut.model_validate(await service.get_delivery(session, delivery_id))


@router.get("/webhook-targets", response_model=WebhookTargetList, tags=["webhook targets"],
            dependencies=[read])
async def list_webhook_targets(session: SessionDep) -> WebhookTargetList:
    return WebhookTargetList(
        items=[WebhookTargetOut.model_validate(t) for t in await service.list_targets(session)]
    )
