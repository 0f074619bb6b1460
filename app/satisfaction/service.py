"""Recording satisfaction: the series feeds handover outcomes; the newest is on the customer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import compliance
from app.core.pagination import (
    Page,
    cursor_value,
    keyset_page,
)
from app.customers import repository as customers_repository
from app.errors import InvalidInput, NotFound
from app.satisfaction import repository
from app.satisfaction.schemas import SatisfactionOut

# Clocks of CRMs and survey tools drift a little; anything later than this is a data error.
CLOCK_SKEW = timedelta(minutes=5)


def refuse_future(at: datetime, *, field: str, now: datetime | None = None) -> None:
    """InvalidInput (422) when ``at`` is later than now (give or take ``CLOCK_SKEW``): a
    measurement or a payment that has not happened yet would count as the latest fact."""
    if at > (now or datetime.now(UTC)) + CLOCK_SKEW:
        raise InvalidInput(
            f"{field} is in the future.",
            errors=[{"loc": ["body", field], "msg": "must not be in the future"}],
        )


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
    measurement is kept in the series but does not replace the customer's current score; one
    dated in the future is refused (422)."""
    at = recorded_at or datetime.now(UTC)
    refuse_future(at, field="recorded_at")
    await _require_customer(session, customer_id, lock=True)
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
    await repository.set_current_if_latest(session, customer_id, row.id, at)
    # A hard rule may read the score (a PATCH of it is checked the same way): an owner it
    # no longer allows is recorded as a violation.
    await compliance.record_if_read(
        session,
        compliance.Scope.customers([customer_id]),
        facts=_SATISFACTION,
        cause="customer_updated",
        actor=None,
    )
    return SatisfactionOut.model_validate(row)


_SATISFACTION = frozenset({"customer.satisfaction"})


async def list_satisfaction(
    session: AsyncSession, *, customer_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[SatisfactionOut]:
    """A customer's measurements, newest entry first."""
    await _require_customer(session, customer_id)
    after = cursor_value(cursor, int)
    rows = await repository.list_page(session, customer_id, after=after, limit=limit + 1)
    items, next_cursor = keyset_page(
        rows, limit=limit, item=SatisfactionOut.model_validate, key=lambda r: [r.id]
    )
    return Page[SatisfactionOut](items=items, next_cursor=next_cursor)
