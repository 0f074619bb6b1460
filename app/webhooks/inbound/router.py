"""HTTP routes: webhook sources (admin), the inbound endpoint CRMs post to, and the inbox."""

import uuid
from typing import Annotated

from fastapi import Query, Request, Response, status
from fastapi.responses import JSONResponse

from app.api.auth import ADMINS, allow, public
from app.api.auth_failures import FailedAuthLimiter, client_key
from app.api.deps import DbSession
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.errors import problem_responses
from app.events.names import InboundType
from app.webhooks.inbound import service
from app.webhooks.inbound.adapters import SignatureInvalid
from app.webhooks.inbound.schemas import (
    InboundEventOut,
    InboundStatus,
    ReceiptOut,
    SourceCreate,
    SourceName,
    SourceOut,
    SourceRotation,
    SourceUpdate,
    SourceWithSecret,
)

sources = PrefixedRouter(
    prefix="/webhook-sources",
    tags=["webhooks"],
    route_class=BatonRoute,
    dependencies=[allow(read=ADMINS, write=ADMINS)],
)
inbox = PrefixedRouter(
    prefix="/webhooks/inbound-events",
    tags=["webhooks"],
    route_class=BatonRoute,
    dependencies=[allow(read=ADMINS, write=ADMINS)],
)
# Authenticated by the request's signature, not by an API key.
inbound = PrefixedRouter(
    prefix="/webhooks/inbound",
    tags=["webhooks"],
    dependencies=[public("CRM webhooks are authenticated by their signature")],
)


@sources.post(
    "",
    response_model=SourceWithSecret,
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook source",
    responses=problem_responses(409),
)
async def create_source(session: DbSession, data: SourceCreate) -> SourceWithSecret:
    """Allow a CRM to post events to `/v1/webhooks/inbound/{name}`. The secret (given, or a
    generated `whsec_…`) is returned now and never again."""
    return await service.create_source(session, data=data)


@sources.get(
    "",
    response_model=list[SourceOut],
    summary="List webhook sources",
    responses=problem_responses(validation=False),
)
async def list_sources(session: DbSession) -> list[SourceOut]:
    """Every source; secrets are never listed."""
    return await service.list_sources(session)


@sources.get(
    "/{source_id}",
    response_model=SourceOut,
    summary="Get a webhook source",
    responses=problem_responses(404),
)
async def get_source(session: DbSession, source_id: uuid.UUID) -> SourceOut:
    """One source, without its secret."""
    return await service.get_source(session, source_id=source_id)


@sources.patch(
    "/{source_id}",
    response_model=SourceOut,
    summary="Change a webhook source",
    responses=problem_responses(404),
)
async def update_source(session: DbSession, source_id: uuid.UUID, data: SourceUpdate) -> SourceOut:
    """Enable or disable it, or change how its events are handled."""
    return await service.update_source(session, source_id=source_id, data=data)


@sources.post(
    "/{source_id}/rotate-secret",
    response_model=SourceWithSecret,
    summary="Rotate a webhook source's secret",
    responses=problem_responses(404),
)
async def rotate_source_secret(
    session: DbSession, source_id: uuid.UUID, data: SourceRotation | None = None
) -> SourceWithSecret:
    """Set (or generate) a new secret; requests signed with the old one are accepted during
    the grace period."""
    return await service.rotate_source_secret(
        session, source_id=source_id, data=data or SourceRotation()
    )


@sources.delete(
    "/{source_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a webhook source",
    responses=problem_responses(404),
)
async def delete_source(session: DbSession, source_id: uuid.UUID) -> Response:
    """Remove the source and its inbox."""
    await service.delete_source(session, source_id=source_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@inbound.post(
    "/{source}",
    response_model=ReceiptOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Receive a CRM webhook",
    responses={
        200: {"description": "Every event was a duplicate: acknowledged, not processed again"},
        **problem_responses(401, 404, 413, 415, 429),
    },
)
async def receive(session: DbSession, source: SourceName, request: Request) -> JSONResponse:
    """The endpoint a CRM posts to. The signature is verified on the raw body **before** it
        is parsed (Standard Webhooks, HubSpot v3 or `sha256=` HMAC, per the source's adapter);
        each event is stored with its raw body and headers (once per source and event id) and
        processed asynchronously. 202 when something new was stored, 200 when every event was a
        duplicate; 401 for a bad, stale or missing signature; 404 for an unknown source; 415 for
        a body that is not JSON; 429 once a sender has sent too many bad signatures to the source
    in a minute."""
    failures: FailedAuthLimiter | None = getattr(request.app.state, "auth_failures", None)
    # Counted per source and sender address: a bad sender cannot lock out the CRM itself.
    sender = f"webhook:{source}:{client_key(request.scope)}"
    if failures is not None:
        failures.check(sender, what="signatures for this source from this address")
    try:
        receipt, new = await service.receive(
            session,
            source_name=source,
            method=request.method,
            url=str(request.url),
            headers=request.headers,
            body=await request.body(),
        )
    except SignatureInvalid:
        if failures is not None:
            failures.failed(sender)
        raise
    return JSONResponse(receipt.model_dump(mode="json"), status_code=202 if new else 200)


@inbox.get(
    "",
    response_model=Page[InboundEventOut],
    summary="List inbound webhook events",
    responses=problem_responses(),
)
async def list_events(
    session: DbSession,
    page: PageQuery,
    source: Annotated[SourceName | None, Query()] = None,
    status: InboundStatus | None = None,
    type: InboundType | None = None,
) -> Page[InboundEventOut]:
    """Received events, newest first, with their status: `received`, `processed`, `failed`
    (with the error) or `ignored` (with the reason)."""
    return await service.list_events(
        session, cursor=page.cursor, limit=page.limit, source=source, status=status, type=type
    )


@inbox.get(
    "/{event_id}",
    response_model=InboundEventOut,
    summary="Get an inbound webhook event",
    responses=problem_responses(404),
)
async def get_event(session: DbSession, event_id: uuid.UUID) -> InboundEventOut:
    """One event and what processing did with it."""
    return await service.get_event(session, event_id=event_id)


@inbox.post(
    "/{event_id}/retry",
    response_model=InboundEventOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Retry a failed inbound event",
    responses=problem_responses(404, 409),
)
async def retry_event(session: DbSession, event_id: uuid.UUID) -> InboundEventOut:
    """Queue a failed event to be processed again (after fixing what made it fail)."""
    return await service.retry_event(session, event_id=event_id)
