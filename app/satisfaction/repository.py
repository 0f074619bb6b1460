"""SQL for satisfaction scores."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Customer, SatisfactionScore
from app.db.rows import row_as, rows_as


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """A stored satisfaction measurement."""

    id: int
    customer_id: uuid.UUID
    score: Decimal
    recorded_at: datetime
    source: str
    note: str | None
    created_at: datetime


async def insert_score(session: AsyncSession, values: dict[str, Any]) -> ScoreRow:
    """Add one measurement and return the row."""
    result = await session.execute(
        insert(SatisfactionScore).values(**values).returning(*SatisfactionScore.__table__.c)
    )
    return row_as(ScoreRow, result.mappings().one())


async def set_current_if_latest(
    session: AsyncSession, customer_id: uuid.UUID, score_id: int, recorded_at: datetime
) -> None:
    """Copy the score onto the customer when it is the newest measurement."""
    newer = await session.scalar(
        select(func.count()).where(
            SatisfactionScore.customer_id == customer_id,
            SatisfactionScore.id != score_id,
            SatisfactionScore.recorded_at > recorded_at,
        )
    )
    if newer:
        return
    score = select(SatisfactionScore.score).where(SatisfactionScore.id == score_id)
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(
            satisfaction=score.scalar_subquery(),
            version=Customer.version + 1,
            updated_at=func.now(),
        )
    )


async def list_page(
    session: AsyncSession, customer_id: uuid.UUID, *, after: int | None, limit: int
) -> list[ScoreRow]:
    """A customer's measurements, newest entry first (by id, not by ``recorded_at``)."""
    stmt = (
        select(*SatisfactionScore.__table__.c)
        .where(SatisfactionScore.customer_id == customer_id)
        .order_by(SatisfactionScore.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(SatisfactionScore.id < after)
    return rows_as(ScoreRow, (await session.execute(stmt)).mappings())
