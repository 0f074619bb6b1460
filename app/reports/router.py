"""HTTP routes for KPIs over a period and portfolios at a date."""

import uuid
from typing import Annotated, Any, Literal

from fastapi import Query, Response

from app.api.auth import OPERATORS, STAFF, allow
from app.api.deps import DbSession, LongSession
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.core.schemas import Instant
from app.errors import problem_responses
from app.managers.schemas import ManagerStatus
from app.reports import service
from app.reports.schemas import KpiGrouping, KpiPage, KpiRow, KpiSort, PortfolioEntry

router = PrefixedRouter(
    tags=["reports"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF, write=OPERATORS)],
)

FromQuery = Annotated[
    Instant | None,
    Query(alias="from", description="Start of the period (exclusive); default `to` − 30 days."),
]
ToQuery = Annotated[
    Instant | None, Query(alias="to", description="End of the period (inclusive); default now.")
]
_KPI_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The KPI rows (JSON page, or every row as CSV with `format=csv`).",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/reports/kpis",
    response_model=KpiPage,
    summary="KPIs per manager, team or region over a period",
    responses={**_KPI_CONTENT, **problem_responses()},
)
async def list_kpis(
    session: LongSession,  # seconds for a whole company: never hold back short requests
    page: PageQuery,
    from_: FromQuery = None,
    to: ToQuery = None,
    group_by: KpiGrouping = "manager",
    team: Annotated[str | None, Query(max_length=200)] = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
    level: Annotated[int | None, Query(ge=1, le=5)] = None,
    status: ManagerStatus | None = None,
    sort: Annotated[
        KpiSort, Query(description="Rows without a value (no rate, no score) come last.")
    ] = "name",
    order: Literal["asc", "desc"] = "asc",
    fmt: Annotated[
        Literal["json", "csv"],
        Query(alias="format", description="`csv`: every row, no paging."),
    ] = "json",
) -> Any:
    """Evaluate managers over `(from, to]` from the ownership ledger: the book at the start
    and the end (active customers, workload, annual value), customers gained and lost by
    ledger reason, retention of the starting book (still active; still with the same
    manager), churn (count and annual value, charged to the owner when it happened),
    satisfaction (scores attributed to the owner when recorded; the book's mean latest score
    at the start and end), revenue by currency (attributed the same way), handovers in and
    out, refusals received, and what each manager received (count, weight, Jain's fairness
    index across the team). Filters choose managers by their current team, region, level and
    status; `group_by=team|region` sums their rows."""
    result = await service.manager_kpis(
        session,
        from_=from_,
        to=to,
        group_by=group_by,
        team=team,
        region=region,
        level=level,
        status=status,
        sort=sort,
        descending=order == "desc",
        cursor=None if fmt == "csv" else page.cursor,
        limit=None if fmt == "csv" else page.limit,
    )
    if fmt == "csv":
        return Response(
            service.kpis_csv(result),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="kpis.csv"'},
        )
    return result


@router.get(
    "/managers/{manager_id}/kpis",
    response_model=KpiRow,
    summary="One manager's KPIs over a period",
    tags=["managers"],
    responses=problem_responses(404),
)
async def get_manager_kpis(
    session: DbSession, manager_id: uuid.UUID, from_: FromQuery = None, to: ToQuery = None
) -> KpiRow:
    """The KPIs of `GET /v1/reports/kpis` for one manager: evaluate a manager before
    replacing them, or a new owner after a handover."""
    return await service.one_manager_kpis(session, manager_id=manager_id, from_=from_, to=to)


@router.get(
    "/reports/portfolio",
    response_model=Page[PortfolioEntry],
    summary="Portfolios at a date",
    responses=problem_responses(),
)
async def list_portfolio_at(
    session: DbSession,
    page: PageQuery,
    at: Annotated[Instant | None, Query(description="The instant; default now.")] = None,
    team: Annotated[str | None, Query(max_length=200)] = None,
    manager_id: uuid.UUID | None = None,
    active: Annotated[
        bool | None, Query(description="Only customers active (or churned) at that instant.")
    ] = None,
) -> Page[PortfolioEntry]:
    """Who owned which customer at `at`, for a team (by the managers' current team) or one
    manager, from the ledger rows open at that instant: the owner then, since when and why."""
    return await service.portfolio_at(
        session,
        at=at,
        team=team,
        manager_id=manager_id,
        active=active,
        cursor=page.cursor,
        limit=page.limit,
    )
