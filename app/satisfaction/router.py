"""HTTP routes for customer satisfaction measurements."""

import uuid

from fastapi import status

from app.api.auth import OPERATORS_AND_CRM, STAFF_AND_CRM, allow
from app.api.deps import DbSession
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.errors import problem_responses
from app.satisfaction import service
from app.satisfaction.schemas import SatisfactionIn, SatisfactionOut

router = PrefixedRouter(
    prefix="/customers",
    tags=["customers"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF_AND_CRM, write=OPERATORS_AND_CRM)],
)


@router.post(
    "/{customer_id}/satisfaction",
    response_model=SatisfactionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a satisfaction score",
    responses=problem_responses(404),
)
async def record_satisfaction(
    session: DbSession, customer_id: uuid.UUID, body: SatisfactionIn
) -> SatisfactionOut:
    """Add a measurement to the customer's satisfaction series (survey, NPS, CRM). The
    newest measurement becomes the customer's `satisfaction`; handover outcomes compare the
    series before and after a handover."""
    return await service.record_satisfaction(
        session,
        customer_id=customer_id,
        score=body.score,
        recorded_at=body.recorded_at,
        source=body.source,
        note=body.note,
    )


@router.get(
    "/{customer_id}/satisfaction",
    response_model=Page[SatisfactionOut],
    summary="Satisfaction history",
    responses=problem_responses(404),
)
async def list_satisfaction(
    session: DbSession, customer_id: uuid.UUID, page: PageQuery
) -> Page[SatisfactionOut]:
    """The customer's satisfaction measurements, newest first."""
    return await service.list_satisfaction(
        session, customer_id=customer_id, cursor=page.cursor, limit=page.limit
    )
