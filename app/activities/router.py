"""HTTP routes for customers' follow-up activities."""

import uuid
from typing import Annotated

from fastapi import Query, Response, status

from app.activities import service
from app.activities.schemas import ActivityCreate, ActivityList, ActivityOut
from app.api.auth import OPERATORS_AND_CRM, STAFF_AND_CRM, allow
from app.api.deps import CurrentCaller, DbSession
from app.api.routing import BatonRoute, PrefixedRouter
from app.errors import problem_responses

router = PrefixedRouter(
    prefix="/customers",
    tags=["activities"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF_AND_CRM, write=OPERATORS_AND_CRM)],
)


@router.post(
    "/{customer_id}/activities",
    response_model=ActivityOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a follow-up activity",
    responses={
        200: {"model": ActivityOut, "description": "Already recorded (same external_id)."},
        **problem_responses(404, 409),
    },
)
async def record_activity(
    session: DbSession,
    caller: CurrentCaller,
    response: Response,
    customer_id: uuid.UUID,
    body: ActivityCreate,
) -> ActivityOut:
    """Record a call, meeting, email… with the customer; `last_activity_at` moves to the
    latest one. Sending the same `external_id` again returns the recorded activity (200)."""
    activity, new = await service.record_activity(
        session, customer_id=customer_id, data=body, actor=caller.name
    )
    if not new:
        response.status_code = status.HTTP_200_OK
    return activity


@router.get(
    "/{customer_id}/activities",
    response_model=ActivityList,
    summary="A customer's follow-up activities",
    responses=problem_responses(404),
)
async def list_activities(
    session: DbSession,
    customer_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ActivityList:
    """The latest follow-ups, newest first."""
    return await service.list_activities(session, customer_id=customer_id, limit=limit)
