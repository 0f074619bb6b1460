"""Follow-up activity use cases: record one (idempotent by external id), list them.

Each activity moves the customer's ``last_activity_at`` forward (never back: an older
activity arriving late keeps the later one), which the pool's reclaim rules read.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.activities import repository
from app.activities.schemas import ActivityCreate, ActivityList, ActivityOut
from app.errors import Conflict, InvalidInput, NotFound


async def record_activity(
    session: AsyncSession, *, customer_id: uuid.UUID, data: ActivityCreate, actor: str
) -> tuple[ActivityOut, bool]:
    """Record a follow-up; returns it and whether it is new. A known ``external_id`` returns
    the recorded activity (409 when it belongs to another customer)."""
    if not await repository.customer_exists(session, customer_id):
        raise NotFound(f"Customer {customer_id} does not exist.")
    if data.by is not None and not await repository.manager_exists(session, data.by):
        raise InvalidInput(f"Manager {data.by} does not exist.")
    values = {
        "customer_id": customer_id,
        "kind": data.kind,
        "at": data.at,
        "by_manager_id": data.by,
        "external_id": data.external_id,
        "note": data.note,
        "created_by": actor,
    }
    new_id = await repository.insert_new(session, values)
    if new_id is None:
        assert data.external_id is not None
        known = await repository.get_by_external_id(session, data.external_id)
        assert known is not None
        if known.customer_id != customer_id:
            raise Conflict(
                f"Activity {data.external_id!r} is recorded for another customer.",
                activity_id=str(known.id),
            )
        return ActivityOut.model_validate(known), False
    await repository.touch_customer(session, customer_id, data.at)
    row = await repository.get(session, new_id)
    return ActivityOut.model_validate(row), True


async def list_activities(
    session: AsyncSession, *, customer_id: uuid.UUID, limit: int = 100
) -> ActivityList:
    """The customer's latest follow-ups, newest first."""
    if not await repository.customer_exists(session, customer_id):
        raise NotFound(f"Customer {customer_id} does not exist.")
    rows = await repository.latest(session, customer_id, limit)
    return ActivityList(items=[ActivityOut.model_validate(r) for r in rows])
