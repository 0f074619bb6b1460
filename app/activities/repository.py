"""SQL for follow-up activities."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Customer, CustomerActivity, Manager


async def customer_exists(session: AsyncSession, customer_id: uuid.UUID) -> bool:
    """Whether the customer exists."""
    return await session.scalar(select(Customer.id).where(Customer.id == customer_id)) is not None


async def manager_exists(session: AsyncSession, manager_id: uuid.UUID) -> bool:
    """Whether the manager exists."""
    return await session.scalar(select(Manager.id).where(Manager.id == manager_id)) is not None


async def insert_new(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID | None:
    """Insert the activity; None when its external id is already recorded."""
    return await session.scalar(
        pg_insert(CustomerActivity)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["external_id"])
        .returning(CustomerActivity.id)
    )


async def get_by_external_id(session: AsyncSession, external_id: str) -> CustomerActivity | None:
    """The activity recorded under ``external_id``."""
    return await session.scalar(
        select(CustomerActivity).where(CustomerActivity.external_id == external_id)
    )


async def get(session: AsyncSession, activity_id: uuid.UUID) -> CustomerActivity | None:
    """One activity by id."""
    return await session.scalar(select(CustomerActivity).where(CustomerActivity.id == activity_id))


async def touch_customer(session: AsyncSession, customer_id: uuid.UUID, at: datetime) -> None:
    """Move the customer's ``last_activity_at`` forward to ``at`` (never back)."""
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(last_activity_at=func.greatest(Customer.last_activity_at, at))
    )


async def latest(
    session: AsyncSession, customer_id: uuid.UUID, limit: int
) -> list[CustomerActivity]:
    """The customer's latest activities, newest first."""
    rows = await session.scalars(
        select(CustomerActivity)
        .where(CustomerActivity.customer_id == customer_id)
        .order_by(CustomerActivity.at.desc(), CustomerActivity.id)
        .limit(limit)
    )
    return list(rows)
