"""Reports: evaluate managers, teams and regions over a period, and portfolios at a date."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import (
    Page,
    cursor_value,
    decode_cursor,
    encode_cursor,
    keyset_page,
)
from app.customers.schemas import CustomerOut, CustomerStatus
from app.errors import InvalidInput, NotFound
from app.managers import repository as managers
from app.reports import repository
from app.reports.repository import KpiQuery
from app.reports.schemas import (
    Book,
    Churn,
    Handovers,
    KpiGrouping,
    KpiPage,
    KpiRow,
    PortfolioEntry,
    Received,
    Retention,
    Satisfaction,
)

DEFAULT_PERIOD = timedelta(days=30)


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def period(from_: datetime | None, to: datetime | None) -> tuple[datetime, datetime]:
    """The period asked, ``(from, to]``: ``to`` defaults to now, ``from`` to 30 days before
    ``to``; an empty or reversed period is a 422."""
    end = _utc(to) if to is not None else datetime.now(UTC)
    start = _utc(from_) if from_ is not None else end - DEFAULT_PERIOD
    if start >= end:
        raise InvalidInput(
            "`from` must be before `to`.",
            errors=[{"loc": ["query", "from"], "msg": "must be before `to`"}],
        )
    return start, end


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _row(r: RowMapping) -> KpiRow:
    return KpiRow(
        key=r["key"],
        managers=int(r["managers"]),
        manager_id=r["manager_id"],
        name=r["name"],
        team=r["team"],
        region=r["region"],
        level=r["level"],
        status=r["status"],
        book_start=Book(
            customers=int(r["start_customers"]),
            workload=int(r["start_workload"]),
            annual_value=r["start_value"],
        ),
        book_end=Book(
            customers=int(r["end_customers"]),
            workload=int(r["end_workload"]),
            annual_value=r["end_value"],
        ),
        gained=int(r["gained"]),
        gained_by_reason=r["gained_by_reason"],
        lost=int(r["lost"]),
        lost_by_reason=r["lost_by_reason"],
        retention=Retention(
            start_customers=int(r["start_customers"]),
            still_active=int(r["still_active"]),
            still_with_manager=int(r["still_with_manager"]),
            active_rate=_num(r["active_rate"]),
            with_manager_rate=_num(r["with_manager_rate"]),
        ),
        churned=Churn(customers=int(r["churned"]), annual_value=r["churned_value"]),
        satisfaction=Satisfaction(
            average=_num(r["sat_average"]),
            scores=int(r["scores"]),
            start=_num(r["sat_start"]),
            end=_num(r["sat_end"]),
            change=_num(r["sat_change"]),
        ),
        revenue={currency: Decimal(amount) for currency, amount in r["revenue"].items()},
        handovers=Handovers(
            handovers_in=int(r["handovers_in"]),
            customers_in=int(r["customers_handed_in"]),
            handovers_out=int(r["handovers_out"]),
            customers_out=int(r["customers_handed_out"]),
        ),
        refusals_received=int(r["refusals"]),
        received=Received(
            customers=int(r["gained"]),
            weight=int(r["received_weight"]),
            jain_index=_num(r["received_jain"]),
        ),
    )


async def manager_kpis(
    session: AsyncSession,
    *,
    from_: datetime | None,
    to: datetime | None,
    group_by: KpiGrouping = "manager",
    team: str | None = None,
    region: str | None = None,
    level: int | None = None,
    status: str | None = None,
    manager_id: uuid.UUID | None = None,
    manager_ids: Sequence[uuid.UUID] | None = None,
    sort: str = "name",
    descending: bool = False,
    cursor: str | None = None,
    limit: int | None = 50,
) -> KpiPage:
    """KPIs per manager (or per team, or region) over ``(from, to]``, computed in one
    statement from the ledger, churn dates, satisfaction scores, revenue events and refusals.
    The filters choose managers by their current attributes; ``limit=None`` gives every row
    (the CSV export)."""
    start, end = period(from_, to)
    offset = decode_cursor(cursor, (int,))[0] if cursor else 0
    if offset < 0:
        raise InvalidInput(
            "The cursor is not valid; pass back a next_cursor unchanged.",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        )
    query = KpiQuery(
        from_=start,
        to=end,
        grouping=group_by,
        sort=sort,
        descending=descending,
        offset=offset,
        limit=None if limit is None else limit + 1,
        manager_id=manager_id,
        manager_ids=tuple(manager_ids) if manager_ids is not None else None,
        team=team,
        region=region,
        level=level,
        status=status,
    )
    rows = await repository.kpis(session, query)
    more = limit is not None and len(rows) > limit
    items = [_row(r) for r in (rows[:limit] if limit is not None else rows)]
    return KpiPage(
        period_from=start,
        period_to=end,
        group_by=group_by,
        items=items,
        next_cursor=encode_cursor([offset + len(items)]) if more else None,
    )


_CSV_COLUMNS = (
    "key",
    "managers",
    "manager_id",
    "name",
    "team",
    "region",
    "level",
    "status",
    "book_start_customers",
    "book_start_workload",
    "book_start_annual_value",
    "book_end_customers",
    "book_end_workload",
    "book_end_annual_value",
    "gained",
    "gained_by_reason",
    "lost",
    "lost_by_reason",
    "retention_start_customers",
    "retention_still_active",
    "retention_still_with_manager",
    "retention_active_rate",
    "retention_with_manager_rate",
    "churned_customers",
    "churned_annual_value",
    "satisfaction_average",
    "satisfaction_scores",
    "satisfaction_start",
    "satisfaction_end",
    "satisfaction_change",
    "revenue",
    "handovers_in",
    "customers_handed_in",
    "handovers_out",
    "customers_handed_out",
    "refusals_received",
    "received_customers",
    "received_weight",
    "received_jain_index",
)


def _pairs(values: Mapping[str, Any]) -> str:
    return ";".join(f"{k}={v}" for k, v in sorted(values.items()))


def kpis_csv(page: KpiPage) -> str:
    """The KPI rows as CSV, one line per row; per-reason and per-currency figures as
    ``name=value`` pairs separated by ``;``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for r in page.items:
        writer.writerow(
            [
                r.key,
                r.managers,
                r.manager_id,
                r.name,
                r.team,
                r.region,
                r.level,
                r.status,
                r.book_start.customers,
                r.book_start.workload,
                r.book_start.annual_value,
                r.book_end.customers,
                r.book_end.workload,
                r.book_end.annual_value,
                r.gained,
                _pairs(r.gained_by_reason),
                r.lost,
                _pairs(r.lost_by_reason),
                r.retention.start_customers,
                r.retention.still_active,
                r.retention.still_with_manager,
                r.retention.active_rate,
                r.retention.with_manager_rate,
                r.churned.customers,
                r.churned.annual_value,
                r.satisfaction.average,
                r.satisfaction.scores,
                r.satisfaction.start,
                r.satisfaction.end,
                r.satisfaction.change,
                _pairs(r.revenue),
                r.handovers.handovers_in,
                r.handovers.customers_in,
                r.handovers.handovers_out,
                r.handovers.customers_out,
                r.refusals_received,
                r.received.customers,
                r.received.weight,
                r.received.jain_index,
            ]
        )
    return out.getvalue()


async def _require_manager(session: AsyncSession, manager_id: uuid.UUID) -> None:
    if await managers.get(session, manager_id) is None:
        raise NotFound(f"Manager {manager_id} does not exist.")


async def one_manager_kpis(
    session: AsyncSession,
    *,
    manager_id: uuid.UUID,
    from_: datetime | None,
    to: datetime | None,
) -> KpiRow:
    """One manager's KPIs over the period (the team's fairness index is then over that
    manager alone; ask the list with ``team=`` for the team's)."""
    await _require_manager(session, manager_id)
    page = await manager_kpis(session, from_=from_, to=to, manager_id=manager_id, limit=1)
    return page.items[0]


async def kpis_of_managers(
    session: AsyncSession, *, manager_ids: Sequence[uuid.UUID], from_: datetime, to: datetime
) -> dict[uuid.UUID, KpiRow]:
    """Each of these managers' KPIs over the same period, by manager id."""
    if not manager_ids:
        return {}
    page = await manager_kpis(session, from_=from_, to=to, manager_ids=manager_ids, limit=None)
    return {row.manager_id: row for row in page.items if row.manager_id is not None}


async def manager_portfolio_at(
    session: AsyncSession,
    *,
    manager_id: uuid.UUID,
    at: datetime,
    status: CustomerStatus | None,
    tier: str | None,
    cursor: str | None,
    limit: int,
) -> Page[CustomerOut]:
    """The customers the manager owned at ``at`` by the ledger (as they are now; ``status``
    filters on the status then), by id."""
    await _require_manager(session, manager_id)
    after = cursor_value(cursor, uuid.UUID)
    rows = await repository.customers_at(
        session,
        manager_id=manager_id,
        at=_utc(at),
        status=status,
        tier=tier,
        after=after,
        limit=limit + 1,
    )
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=lambda r: CustomerOut.model_validate(dict(r)),
        key=lambda r: [str(r["id"])],
    )
    return Page[CustomerOut](items=items, next_cursor=next_cursor)


async def portfolio_at(
    session: AsyncSession,
    *,
    at: datetime | None,
    team: str | None,
    manager_id: uuid.UUID | None,
    active: bool | None,
    cursor: str | None,
    limit: int,
) -> Page[PortfolioEntry]:
    """Who owned what at ``at`` (default now) for a team or one manager, from the ledger's
    rows open at that instant, by customer id."""
    if team is None and manager_id is None:
        raise InvalidInput(
            "Give a `team` or a `manager_id`.",
            errors=[{"loc": ["query", "team"], "msg": "team or manager_id is required"}],
        )
    after = cursor_value(cursor, uuid.UUID)
    rows = await repository.portfolio_at(
        session,
        at=_utc(at) if at is not None else datetime.now(UTC),
        manager_id=manager_id,
        team=team,
        active=active,
        after=after,
        limit=limit + 1,
    )
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=lambda r: PortfolioEntry.model_validate(r, from_attributes=True),
        key=lambda r: [str(r.customer_id)],
    )
    return Page[PortfolioEntry](items=items, next_cursor=next_cursor)
