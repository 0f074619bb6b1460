"""SQL for tiers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Customer, Tier
from app.db.rows import row_as, rows_as


@dataclass(frozen=True, slots=True)
class TierRow:
    """A tier with the number of its active customers."""

    code: str
    name: str
    rank: int
    weight: int
    min_manager_level: int
    description: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    customer_count: int


_customer_count = (
    select(func.count())
    .where(Customer.tier_code == Tier.code, Customer.status == "active")
    .correlate(Tier)
    .scalar_subquery()
    .label("customer_count")
)
_columns = (*Tier.__table__.c, _customer_count)


async def get(session: AsyncSession, code: str) -> TierRow | None:
    """One tier with its customer count."""
    row = (await session.execute(select(*_columns).where(Tier.code == code))).mappings().first()
    return None if row is None else row_as(TierRow, row)


async def list_page(
    session: AsyncSession, *, after: tuple[int, str] | None, limit: int
) -> list[TierRow]:
    """Tiers ordered by (rank, code), after the given key."""
    stmt = select(*_columns).order_by(Tier.rank, Tier.code).limit(limit)
    if after is not None:
        stmt = stmt.where(func.row(Tier.rank, Tier.code) > func.row(*after))
    return rows_as(TierRow, (await session.execute(stmt)).mappings())


async def insert(session: AsyncSession, values: dict[str, Any]) -> None:
    """Add a tier (the unique code is enforced by the primary key)."""
    session.add(Tier(**values))
    await session.flush()


async def update_fields(session: AsyncSession, code: str, values: dict[str, Any]) -> bool:
    """Change some fields and bump the version; False when the tier does not exist."""
    result = await session.execute(
        update(Tier)
        .where(Tier.code == code)
        .values(**values, version=Tier.version + 1, updated_at=func.now())
        .returning(Tier.code)
    )
    return result.first() is not None


async def lock_version(session: AsyncSession, code: str) -> int | None:
    """Lock the tier row for the transaction and return its version (None: no such tier)."""
    stmt = select(Tier.version).where(Tier.code == code).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def count_customers(session: AsyncSession, code: str) -> int:
    """All customers (any status) using the tier."""
    stmt = select(func.count()).select_from(Customer).where(Customer.tier_code == code)
    return int((await session.execute(stmt)).scalar_one())


async def delete(session: AsyncSession, code: str) -> bool:
    """Remove a tier; False when it does not exist."""
    obj = await session.get(Tier, code)
    if obj is None:
        return False
    await session.delete(obj)
    await session.flush()
    return True


async def list_all(session: AsyncSession) -> list[RowMapping]:
    """Every tier (there are few)."""
    return list((await session.execute(select(*Tier.__table__.c).order_by(Tier.rank))).mappings())
