"""Channel endpoints: every way a contact arrives, each documented with a real example.

Routes use ``ChannelRoute``: the body size is checked and the sender authenticated
(webhook signature or API key) before anything is parsed. Each create honours
``Idempotency-Key``. Routing, clocks and notifications follow asynchronously from the
events committed with the ticket, hence ``202 Accepted``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from escalator.ingest import batch, channels, email_in, idempotency, monitoring, service
from escalator.ingest.config import IngestConfig
from escalator.ingest.groupcommit import GroupCommit
from escalator.ingest.inbound import Inbound
from escalator.ingest.schemas import ApiChannelEvent, IngestResult
from escalator.ingest.security import ChannelRoute
from escalator.ingest.settings import IngestSettings
from escalator.shared.app import SessionDep, get_runtime
from escalator.shared.problems import Problem

router = APIRouter(prefix="/v1/channels", tags=["channels"], route_class=ChannelRoute)

#: channel -> (JSON model, normalizer) for the single and batch forms.
JSON_CHANNELS: dict[str, tuple[type[BaseModel], Callable[[Any], Inbound]]] = {
    "api": (ApiChannelEvent, channels.api_inbound),
    "portal": (channels.PortalSubmission, channels.portal_inbound),
    "chat": (channels.ChatEvent, channels.chat_inbound),
    "phone": (channels.PhoneCall, channels.phone_inbound),
    "social": (channels.SocialPost, channels.social_inbound),
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing API key or bad webhook signature"},
    413: {"description": "Body larger than the channel's limit (refused before parsing)"},
    422: {"description": "Invalid event; `errors[].field` names each bad field"},
}


def config_of(request: Request) -> IngestConfig:
    config: IngestConfig = request.app.state.runtime.extras["config"]
    return config


def _result(outcome: service.Outcome) -> dict[str, Any]:
    return IngestResult(ticket_id=outcome.ticket_id, created=outcome.created).model_dump()


async def _submit(request: Request, inbound: Inbound) -> JSONResponse:
    """One event: with ``Idempotency-Key`` in a transaction of its own (the stored answer
    commits with the ticket), otherwise grouped with concurrent requests (group commit)."""
    if request.headers.get(idempotency.HEADER):
        runtime = get_runtime(request)
        async with runtime.sessionmaker() as session, session.begin():
            replayed = await idempotency.replay(session, request)
            if replayed is not None:
                return replayed
            body = _result(await service.ingest(session, inbound, config_of(request)))
            await idempotency.remember(session, request, 202, body)
    else:
        intake: GroupCommit = request.app.state.runtime.extras["group_commit"]
        body = _result(await intake.submit(inbound))
    ticket_id = body["ticket_id"]
    headers = {"Location": f"/v1/tickets/{ticket_id}"} if ticket_id else {}
    return JSONResponse(body, status_code=202, headers=headers)


def _is_plain_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _json_route(channel: str, summary: str) -> None:
    model, normalize = JSON_CHANNELS[channel]

    async def submit(body: Any, request: Request) -> JSONResponse:
        return await _submit(request, normalize(body))

    async def direct(request: Request, raw: bytes) -> JSONResponse | None:
        """A valid JSON event, validated from its bytes in one pass (pydantic's JSON
        mode); anything else is declined, so FastAPI answers it exactly as before: a
        query string or an escaped NUL (the app-wide ``reject_nul`` check), another
        content type, or any validation error."""
        if request.scope["query_string"] or b"\\u0000" in raw or not _is_plain_json(request):
            return None
        try:
            event = model.model_validate_json(raw)
        except ValidationError:
            return None
        return await _submit(request, normalize(event))

    # Real objects, not the strings ``from __future__`` leaves, so FastAPI sees the model.
    submit.__annotations__ = {"body": model, "request": Request, "return": JSONResponse}
    submit.__doc__ = summary
    submit.direct = direct  # type: ignore[attr-defined]  # read by ChannelRoute
    router.add_api_route(f"/{channel}/events", submit, methods=["POST"], status_code=202,
                         response_model=IngestResult, summary=summary, responses=_RESPONSES,
                         name=f"submit_{channel}")


_json_route("api", "Submit one contact in the generic JSON form")
_json_route("portal", "Submit a customer-portal form")
_json_route("chat", "Submit a live-chat message or a chatbot hand-off")
_json_route("phone", "Submit a call-center call record")
_json_route("social", "Submit a social-media mention or direct message")

_EMAIL_EXAMPLE = (
    "From: =?UTF-8?Q?Jo=C3=A3o_Silva?= <joao.silva@acme.example>\r\n"
    "To: billing@helpdesk.example\r\nSubject: Fatura duplicada\r\n"
    "Message-ID: <CAF=1234@mail.acme.example>\r\nContent-Language: pt\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n\r\n"
    "Recebemos duas faturas com o mesmo número.\r\n"
)


@router.post(
    "/email/events", status_code=202, response_model=IngestResult, responses=_RESPONSES,
    summary="Submit one raw email (message/rfc822), as inbound-mail services forward it",
    openapi_extra={"requestBody": {"required": True, "content": {"message/rfc822": {
        "schema": {"type": "string", "format": "binary"}, "example": _EMAIL_EXAMPLE}}}},
)
async def submit_email(request: Request) -> JSONResponse:
    """Threads by Message-ID / In-Reply-To / References; the recipient picks the department."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "message/rfc822":
        raise Problem(415, "Unsupported Media Type", "send the raw message as message/rfc822",
                      errors=[{"field": "header.Content-Type", "message": "must be "
                               "message/rfc822", "type": "value_error"}])
    settings: IngestSettings = request.app.state.runtime.settings
    inbound = email_in.parse(await request.body(), departments=config_of(request).departments,
                             max_attachment_bytes=settings.max_attachment_bytes)
    return await _submit(request, inbound)


class AlertResults(BaseModel):
    tickets: list[IngestResult] = Field(description="One per alert of the group, in order")


@router.post("/monitoring/events", status_code=202, response_model=AlertResults,
             responses=_RESPONSES,
             summary="Prometheus Alertmanager webhook (version 4); API key with tickets:write")
async def submit_alertmanager(body: monitoring.AlertmanagerPayload, request: Request,
                              session: SessionDep) -> JSONResponse:
    replayed = await idempotency.replay(session, request)
    if replayed is not None:
        return replayed
    results = []
    for inbound in monitoring.alertmanager_inbound(body):
        outcome = await service.ingest(session, inbound, config_of(request))
        results.append({"ticket_id": outcome.ticket_id,
                        "created": outcome.created})
    payload = {"tickets": results}
    await idempotency.remember(session, request, 202, payload)
    return JSONResponse(payload, status_code=202)


@router.post("/monitoring/pagerduty", status_code=202, responses=_RESPONSES,
             summary="PagerDuty Events API v2 (point the integration's /v2/enqueue here)")
async def submit_pagerduty(body: monitoring.PagerDutyEvent, request: Request,
                           session: SessionDep) -> JSONResponse:
    """Authenticated by ``routing_key``, which must be a configured integration key."""
    import hmac

    settings: IngestSettings = request.app.state.runtime.settings
    if not any(hmac.compare_digest(body.routing_key.encode(), k.get_secret_value().encode())
               for k in settings.pagerduty_routing_keys):
        raise Problem(401, "Unauthorized", "unknown routing_key",
                      errors=[{"field": "body.routing_key", "message": "not a configured "
                               "integration key", "type": "value_error"}])
    try:
        inbound = monitoring.pagerduty_inbound(body)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        raise Problem(422, "Request validation failed", str(exc), errors=[
            {"field": f"body.{field}", "message": message, "type": "value_error"}]) from exc
    outcome = await service.ingest(session, inbound, config_of(request))
    return JSONResponse({"status": "success", "message": "Event processed",
                         "dedup_key": inbound.external_id.split(":", 1)[1],
                         "ticket_id": outcome.ticket_id},
                        status_code=202)


class BatchIn(BaseModel):
    events: list[dict[str, Any]] = Field(min_length=1, max_length=1_000)


class BatchItem(BaseModel):
    index: int = Field(description="The event's position in `events`")
    status: int = Field(description="202 stored; otherwise the status it would have had alone")
    ticket_id: str | None = None
    created: bool | None = None
    detail: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For a 422: each bad field, as `body.events.<index>.<field>`")


class BatchOut(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchItem] = Field(description="One per event, in order")


@router.post("/{channel}/events:batch", summary="Submit up to 1,000 events of one channel; "
             "each is answered on its own and good ones are stored", response_model=BatchOut,
             responses={**_RESPONSES, 207: {
                 "model": BatchOut,
                 "description": "Some events were refused (each result says why); the "
                                "others are stored"}})
async def submit_batch(channel: str, body: BatchIn, request: Request) -> JSONResponse:
    if channel not in JSON_CHANNELS:
        raise Problem(404, "Not Found", f"no batch form for channel {channel!r}; "
                      f"one of {', '.join(JSON_CHANNELS)}")
    model, normalize = JSON_CHANNELS[channel]
    results: dict[int, dict[str, Any]] = {}
    valid: list[tuple[int, Inbound]] = []
    for index, raw in enumerate(body.events):
        try:
            valid.append((index, normalize(model.model_validate(raw))))
        except ValidationError as exc:
            results[index] = {"index": index, "status": 422, "errors": [
                {"field": ".".join(["body", "events", str(index), *map(str, e["loc"])]),
                 "message": e["msg"], "type": e["type"]} for e in exc.errors()]}
    outcomes = await batch.store_many(get_runtime(request).sessionmaker, valid,
                                      config_of(request)) if valid else {}
    for index, outcome in outcomes.items():
        if isinstance(outcome, Problem):
            results[index] = {"index": index, "status": outcome.status,
                              "detail": outcome.detail}
        else:
            results[index] = {"index": index, "status": 202, "created": outcome.created,
                              "ticket_id": outcome.ticket_id}
    ordered = [results[i] for i in sorted(results)]
    accepted = sum(1 for r in ordered if r["status"] == 202)
    return JSONResponse({"accepted": accepted, "rejected": len(ordered) - accepted,
                         "results": ordered}, status_code=207 if accepted < len(ordered)
                        else 200)
