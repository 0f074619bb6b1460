"""Recording satisfaction: the series feeds handover outcomes; the newest is on the customer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.pagination import Page, decode_cursor, encode_cursor
from app.customers import repository as customers_repository
from app.errors import NotFound
from app.satisfaction import repository
from app.satisfaction.schemas import SatisfactionOut


async def _require_customer(
    session: AsyncSession, customer_id: uuid.UUID, *, lock: bool = False
) -> None:
    """NotFound unless the customer exists; ``lock`` serialises recordings for one customer,
    so the newest measurement is the one left on it."""
    if await customers_repository.get(session, customer_id, lock=lock) is None:
        raise NotFound(f"Customer {customer_id} does not exist.")


async def record_satisfaction(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    score: Decimal,
    recorded_at: datetime | None = None,
    source: str = "api",
    note: str | None = None,
) -> SatisfactionOut:
    """Store one measurement (also called for CRM webhooks). A late-arriving older
    measurement is kept in the series but does not replace the customer's current score."""
    await _require_customer(session, customer_id, lock=True)
    at = recorded_at or datetime.now(UTC)
    row = await repository.insert_score(
        session,
        {
            "customer_id": customer_id,
            "score": score,
            "recorded_at": at,
            "source": source,
            "note": note,
        },
    )
    await repository.set_current_if_latest(session, customer_id, row["id"], at)
    return SatisfactionOut.model_validate(row)


async def list_satisfaction(
    session: AsyncSession, *, customer_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[SatisfactionOut]:
    """A customer's measurements, newest entry first."""
    await _require_customer(session, customer_id)
    after = decode_cursor(cursor, (int,))[0] if cursor else None
    rows = await repository.list_page(session, customer_id, after=after, limit=limit + 1)
    items = [SatisfactionOut.model_validate(r) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1].id]) if len(rows) > limit else None
    return Page[SatisfactionOut](items=items, next_cursor=next_cursor)
