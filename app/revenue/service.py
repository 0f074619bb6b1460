"""Recording revenue: facts the KPIs attribute to the owner at the time through the ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.pagination import Page, decode_cursor, encode_cursor
from app.customers import repository as customers_repository
from app.errors import Conflict, NotFound
from app.revenue import repository
from app.revenue.schemas import RevenueOut
from app.satisfaction.service import refuse_future


async def _require_customer(session: AsyncSession, customer_id: uuid.UUID) -> None:
    if await customers_repository.get(session, customer_id) is None:
        raise NotFound(f"Customer {customer_id} does not exist.")


async def record_revenue(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    amount: Decimal,
    currency: str,
    occurred_at: datetime | None = None,
    source: str = "api",
    external_id: str | None = None,
    note: str | None = None,
) -> tuple[RevenueOut, bool]:
    """Store one revenue event (also for imports and CRM webhooks); returns it and whether it
    is new. The same ``(source, external_id)`` again returns the stored event, or is a 409 when
    its customer, amount, currency or date differ. A date in the future is a 422."""
    at = occurred_at or datetime.now(UTC)
    refuse_future(at, field="occurred_at")
    await _require_customer(session, customer_id)
    row = await repository.insert_event(
        session,
        {
            "customer_id": customer_id,
            "amount": amount,
            "currency": currency,
            "occurred_at": at,
            "source": source,
            "external_id": external_id,
            "note": note,
        },
    )
    if row is not None:
        return RevenueOut.model_validate(row), True
    assert external_id is not None  # only a (source, external_id) pair can conflict
    stored = await repository.by_external_id(session, source, external_id)
    assert stored is not None
    same = (stored["customer_id"], stored["amount"], stored["currency"]) == (
        customer_id,
        amount,
        currency,
    ) and (occurred_at is None or stored["occurred_at"] == at)
    if not same:
        raise Conflict(
            f"Revenue event '{external_id}' from '{source}' was recorded with other facts.",
            field="external_id",
        )
    return RevenueOut.model_validate(stored), False


async def list_revenue(
    session: AsyncSession, *, customer_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[RevenueOut]:
    """A customer's revenue events, newest entry first."""
    await _require_customer(session, customer_id)
    after = decode_cursor(cursor, (int,))[0] if cursor else None
    rows = await repository.list_page(session, customer_id, after=after, limit=limit + 1)
    items = [RevenueOut.model_validate(r) for r in rows[:limit]]
    next_cursor = encode_cursor([items[-1].id]) if len(rows) > limit else None
    return Page[RevenueOut](items=items, next_cursor=next_cursor)
