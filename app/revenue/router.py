"""HTTP routes for customers' revenue events."""

import uuid
from typing import Annotated, Literal

from fastapi import Query, Request, Response, status

from app.api.auth import OPERATORS_AND_CRM, STAFF, STAFF_AND_CRM, allow
from app.api.deps import DbSession, LongSession
from app.api.idempotency import streamed_body
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.errors import problem_responses
from app.imports.parsing import format_of, import_body
from app.imports.router import BodyFormat
from app.revenue import service
from app.revenue.schemas import RevenueImportReport, RevenueIn, RevenueOut

router = PrefixedRouter(
    prefix="/customers",
    tags=["customers"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF_AND_CRM, write=OPERATORS_AND_CRM)],
)


@router.post(
    "/{customer_id}/revenue",
    response_model=RevenueOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a revenue event",
    responses={
        200: {"description": "Already recorded under this (source, external_id)."},
        **problem_responses(404, 409),
    },
)
async def record_revenue(
    session: DbSession, response: Response, customer_id: uuid.UUID, body: RevenueIn
) -> RevenueOut:
    """Record money the customer brought (a deal won, an invoice paid) on the date it
    happened; KPIs attribute it to whoever owned the customer then. Send the CRM's id as
    `external_id`: a repeat returns the stored event with 200."""
    event, created = await service.record_revenue(
        session,
        customer_id=customer_id,
        amount=body.amount,
        currency=body.currency,
        occurred_at=body.occurred_at,
        source=body.source,
        external_id=body.external_id,
        note=body.note,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return event


@router.get(
    "/{customer_id}/revenue",
    response_model=Page[RevenueOut],
    summary="Revenue history",
    responses=problem_responses(404),
)
async def list_revenue(
    session: DbSession, customer_id: uuid.UUID, page: PageQuery
) -> Page[RevenueOut]:
    """The customer's revenue events, newest first."""
    return await service.list_revenue(
        session, customer_id=customer_id, cursor=page.cursor, limit=page.limit
    )


imports = PrefixedRouter(
    prefix="/imports",
    tags=["imports"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF, write=OPERATORS_AND_CRM)],
)

_REVENUE_CSV = (
    "customer_external_ref,amount,currency,occurred_at,source,external_id\n"
    "hs-company-1,12500.00,EUR,2026-11-20T10:00:00Z,hubspot,deal-4711\n"
)
_REVENUE_NDJSON = (
    '{"customer_external_ref": "hs-company-1", "amount": "12500.00", "currency": "EUR", '
    '"occurred_at": "2026-11-20T10:00:00Z", "source": "hubspot", "external_id": "deal-4711"}\n'
)
_IMPORT_ERRORS = problem_responses(415)
_IMPORT_ERRORS[415] = {
    **_IMPORT_ERRORS[415],
    "description": "The body is neither CSV nor NDJSON, or not UTF-8",
}


@imports.post(
    "/revenue",
    response_model=RevenueImportReport,
    summary="Import revenue events (CSV or NDJSON)",
    responses=_IMPORT_ERRORS,
    openapi_extra=import_body(_REVENUE_CSV, _REVENUE_NDJSON),
)
async def import_revenue(
    request: Request,
    session: LongSession,
    mode: Annotated[
        Literal["all_or_nothing", "best_effort"],
        Query(
            description="`all_or_nothing`: any invalid row rejects the file (422 listing the "
            "rows); `best_effort`: record the valid rows and report the others."
        ),
    ] = "all_or_nothing",
    fmt: BodyFormat = None,
) -> RevenueImportReport:
    """Record revenue events from a CSV (`text/csv`, header row naming the columns) or NDJSON
    (`application/x-ndjson`) body: `customer_external_ref`, `amount`, `currency`,
    `occurred_at`, and optionally `source`, `external_id`, `note`. Rows already recorded
    under their (source, external_id) are counted as duplicates, so a file can be sent
    again. Dates in the future are row errors."""
    body_format = format_of(request.headers.get("content-type"), fmt)
    return await service.import_revenue(
        session, chunks=streamed_body(request), fmt=body_format, mode=mode
    )
