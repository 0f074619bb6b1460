"""SQL for revenue events."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import RowMapping, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import RevenueEvent


async def insert_event(session: AsyncSession, values: dict[str, Any]) -> RowMapping | None:
    """Add one event and return it; None when its (source, external_id) is already stored."""
    stmt = (
        insert(RevenueEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(*RevenueEvent.__table__.c)
    )
    return (await session.execute(stmt)).mappings().first()


async def by_external_id(session: AsyncSession, source: str, external_id: str) -> RowMapping | None:
    """The event a source already sent under this id."""
    stmt = select(*RevenueEvent.__table__.c).where(
        RevenueEvent.source == source, RevenueEvent.external_id == external_id
    )
    return (await session.execute(stmt)).mappings().first()


async def list_page(
    session: AsyncSession, customer_id: uuid.UUID, *, after: int | None, limit: int
) -> list[RowMapping]:
    """A customer's revenue events, newest entry first (by id)."""
    stmt = (
        select(*RevenueEvent.__table__.c)
        .where(RevenueEvent.customer_id == customer_id)
        .order_by(RevenueEvent.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(RevenueEvent.id < after)
    return list((await session.execute(stmt)).mappings())
