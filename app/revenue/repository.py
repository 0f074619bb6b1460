"""SQL for revenue events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Customer, RevenueEvent
from app.db.rows import row_as, rows_as


@dataclass(frozen=True, slots=True)
class RevenueEventRow:
    """A stored revenue event."""

    id: int
    customer_id: uuid.UUID
    amount: Decimal
    currency: str
    occurred_at: datetime
    source: str
    external_id: str | None
    note: str | None
    created_at: datetime


async def insert_event(session: AsyncSession, values: dict[str, Any]) -> RevenueEventRow | None:
    """Add one event and return it; None when its (source, external_id) is already stored."""
    stmt = (
        insert(RevenueEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(*RevenueEvent.__table__.c)
    )
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else row_as(RevenueEventRow, row)


async def by_external_id(
    session: AsyncSession, source: str, external_id: str
) -> RevenueEventRow | None:
    """The event a source already sent under this id."""
    stmt = select(*RevenueEvent.__table__.c).where(
        RevenueEvent.source == source, RevenueEvent.external_id == external_id
    )
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else row_as(RevenueEventRow, row)


async def list_page(
    session: AsyncSession, customer_id: uuid.UUID, *, after: int | None, limit: int
) -> list[RevenueEventRow]:
    """A customer's revenue events, newest entry first (by id)."""
    stmt = (
        select(*RevenueEvent.__table__.c)
        .where(RevenueEvent.customer_id == customer_id)
        .order_by(RevenueEvent.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(RevenueEvent.id < after)
    return rows_as(RevenueEventRow, (await session.execute(stmt)).mappings())


async def customer_ids(session: AsyncSession, external_refs: list[str]) -> dict[str, uuid.UUID]:
    """Customers' ids by their CRM id, for those that exist."""
    rows = await session.execute(
        select(Customer.external_ref, Customer.id).where(Customer.external_ref.in_(external_refs))
    )
    return {ref: customer_id for ref, customer_id in rows.all() if ref is not None}


_INSERT_MANY = text(
    """
    INSERT INTO revenue_events (customer_id, amount, currency, occurred_at, source,
                                external_id, note)
    SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:amounts AS numeric[]),
                         CAST(:currencies AS text[]), CAST(:occurred AS timestamptz[]),
                         CAST(:sources AS text[]), CAST(:external_ids AS text[]),
                         CAST(:notes AS text[]))
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING id
    """
)


async def insert_many(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Add events in one statement; those already recorded under their (source, external_id)
    are skipped. Returns how many were added."""
    if not rows:
        return 0
    columns = {
        "customer_ids": "customer_id",
        "amounts": "amount",
        "currencies": "currency",
        "occurred": "occurred_at",
        "sources": "source",
        "external_ids": "external_id",
        "notes": "note",
    }
    params = {name: [r[key] for r in rows] for name, key in columns.items()}
    return len((await session.execute(_INSERT_MANY, params)).all())
