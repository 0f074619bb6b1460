"""Follow-up activity use cases: record one (idempotent by external id), list them.

Each activity moves the customer's ``last_activity_at`` forward (never back: an older
activity arriving late keeps the later one), which the pool's reclaim rules read.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.activities.schemas import ActivityCreate, ActivityList, ActivityOut
from app.db.models import Customer, CustomerActivity, Manager
from app.errors import Conflict, InvalidInput, NotFound


async def record_activity(
    session: AsyncSession, *, customer_id: uuid.UUID, data: ActivityCreate, actor: str
) -> tuple[ActivityOut, bool]:
    """Record a follow-up; returns it and whether it is new. A known ``external_id`` returns
    the recorded activity (409 when it belongs to another customer)."""
    if await session.scalar(select(Customer.id).where(Customer.id == customer_id)) is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    if data.by is not None and (
        await session.scalar(select(Manager.id).where(Manager.id == data.by)) is None
    ):
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
    new_id = await session.scalar(
        insert(CustomerActivity)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["external_id"])
        .returning(CustomerActivity.id)
    )
    if new_id is None:
        known = await session.scalar(
            select(CustomerActivity).where(CustomerActivity.external_id == data.external_id)
        )
        assert known is not None
        if known.customer_id != customer_id:
            raise Conflict(
                f"Activity {data.external_id!r} is recorded for another customer.",
                activity_id=str(known.id),
            )
        return ActivityOut.model_validate(known), False
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(last_activity_at=func.greatest(Customer.last_activity_at, data.at))
    )
    row = await session.scalar(select(CustomerActivity).where(CustomerActivity.id == new_id))
    return ActivityOut.model_validate(row), True


async def list_activities(
    session: AsyncSession, *, customer_id: uuid.UUID, limit: int = 100
) -> ActivityList:
    """The customer's latest follow-ups, newest first."""
    if await session.scalar(select(Customer.id).where(Customer.id == customer_id)) is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    rows = await session.scalars(
        select(CustomerActivity)
        .where(CustomerActivity.customer_id == customer_id)
        .order_by(CustomerActivity.at.desc(), CustomerActivity.id)
        .limit(limit)
    )
    return ActivityList(items=[ActivityOut.model_validate(r) for r in rows])
