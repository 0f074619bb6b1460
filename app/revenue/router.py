"""HTTP routes for customers' revenue events."""

import uuid

from fastapi import Response, status

from app.api.auth import OPERATORS_AND_CRM, STAFF_AND_CRM, allow
from app.api.deps import DbSession
from app.api.pagination import Page, PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.errors import problem_responses
from app.revenue import service
from app.revenue.schemas import RevenueIn, RevenueOut

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
