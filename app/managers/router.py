"""HTTP routes for managers and their portfolios."""

import uuid
from typing import Annotated

from fastapi import Path, Query, Response, status

from app.api.auth import OPERATORS, OPERATORS_AND_CRM, STAFF_AND_CRM, allow
from app.api.concurrency import ETAG_RESPONSE, IfMatch, set_etag
from app.api.deps import CurrentCaller, DbSession, Reads
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.core.schemas import Instant
from app.customers import service as customers
from app.customers.schemas import CustomerOut, CustomerStatus
from app.errors import problem_responses
from app.flows import ownership
from app.flows.ownership import DepartureHandover
from app.managers import service
from app.managers.schemas import (
    ManagerChangeOut,
    ManagerCreate,
    ManagerOut,
    ManagerSort,
    ManagerStatus,
    ManagerUpdate,
)
from app.reports import service as reports

router = PrefixedRouter(
    prefix="/managers",
    tags=["managers"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF_AND_CRM, write=OPERATORS_AND_CRM, delete=OPERATORS)],
)


@router.get(
    "", response_model=Page[ManagerOut], summary="List managers", responses=problem_responses()
)
async def list_managers(
    session: DbSession,
    page: PageQuery,
    status: ManagerStatus | None = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
    team: Annotated[str | None, Query(max_length=200)] = None,
    level: Annotated[int | None, Query(ge=1, le=5)] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the name.")] = None,
    sort: Annotated[
        ManagerSort | None,
        Query(description="Order (`-`: descending; no capacity sorts as -1); default: by id."),
    ] = None,
) -> Page[ManagerOut]:
    """Managers with their workload, utilization and customer count. With `sort`, pages
    follow that order (ties by id) and a `next_cursor` only continues the same sort."""
    return await service.list_managers(
        session,
        cursor=page.cursor,
        limit=page.limit,
        status=status,
        region=region,
        team=team,
        level=level,
        q=q,
        sort=sort,
    )


@router.post(
    "",
    response_model=ManagerOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a manager",
    responses=problem_responses(409),
)
async def create_manager(session: DbSession, body: ManagerCreate) -> ManagerOut:
    """Create an account manager. Email and external_ref are unique."""
    return await service.create_manager(session, data=body)


@router.get(
    "/by-ref/{external_ref:path}",
    response_model=ManagerOut,
    summary="Get a manager by its CRM id",
    responses=problem_responses(404) | ETAG_RESPONSE,
)
async def get_manager_by_ref(
    reads: Reads, response: Response, external_ref: Annotated[str, Path(max_length=200)]
) -> ManagerOut:
    """The manager whose `external_ref` (its id in the CRM) is this, with workload and
    utilization. The `ETag` header is the manager's version, for `If-Match` on changes."""
    manager = await service.read_manager_by_ref(reads, external_ref=external_ref)
    set_etag(response, manager.version)
    return manager


@router.get(
    "/{manager_id}",
    response_model=ManagerOut,
    summary="Get a manager",
    responses=problem_responses(404) | ETAG_RESPONSE,
)
async def get_manager(reads: Reads, response: Response, manager_id: uuid.UUID) -> ManagerOut:
    """One manager with current workload and utilization. The `ETag` header is the manager's
    version, for `If-Match` on changes."""
    manager = await service.read_manager(reads, manager_id=manager_id)
    set_etag(response, manager.version)
    return manager


@router.patch(
    "/{manager_id}",
    response_model=ManagerChangeOut,
    summary="Update a manager",
    responses=problem_responses(404, 409, 412, 428) | ETAG_RESPONSE,
)
async def update_manager(
    session: DbSession,
    caller: CurrentCaller,
    response: Response,
    manager_id: uuid.UUID,
    body: ManagerUpdate,
    precondition: IfMatch,
    handover: Annotated[
        DepartureHandover,
        Query(
            description="With `status: departed` while the manager owns active customers: "
            "`refuse` (409 naming the count) or `auto` (draft and plan a departure handover "
            "now; the manager is `departing` until it completes)."
        ),
    ] = "refuse",
    interim_manager_id: Annotated[
        uuid.UUID | None,
        Query(description="With `handover=auto`: owns the customers at once until execution."),
    ] = None,
) -> ManagerChangeOut:
    """Change a manager's fields (capacity, level, skills, accepting_new, status …). A change
    that leaves current owners non-compliant (a lower level, another region a rule reads) is
    applied, recorded as violations and listed in `violations_detected`. Setting `departed`
    while the manager owns customers needs `handover=auto`. With `If-Match` the change is
    refused (412) if the manager changed since you read it."""
    manager = await ownership.update_manager(
        session,
        manager_id=manager_id,
        data=body,
        actor=caller.name,
        handover=handover,
        interim_manager_id=interim_manager_id,
        precondition=precondition,
    )
    set_etag(response, manager.version)
    return manager


@router.delete(
    "/{manager_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a manager",
    responses=problem_responses(404, 409, 412, 428),
)
async def delete_manager(session: DbSession, manager_id: uuid.UUID, precondition: IfMatch) -> None:
    """Delete a manager created by mistake. One who owns customers leaves through a handover.
    `If-Match` makes the delete conditional on the version you read."""
    await service.delete_manager(session, manager_id=manager_id, precondition=precondition)


@router.get(
    "/{manager_id}/customers",
    response_model=Page[CustomerOut],
    summary="A manager's portfolio",
    responses=problem_responses(404),
)
async def list_portfolio(
    session: DbSession,
    reads: Reads,
    manager_id: uuid.UUID,
    page: PageQuery,
    tier: Annotated[str | None, Query(max_length=64)] = None,
    status: CustomerStatus | None = None,
    at: Annotated[
        Instant | None,
        Query(
            description="The portfolio at this instant, from the ledger (customers as they "
            "are now; `status` as it was then)."
        ),
    ] = None,
) -> Page[CustomerOut]:
    """The customers this manager owns, or owned at `at`."""
    if at is not None:
        return await reports.manager_portfolio_at(
            session,
            manager_id=manager_id,
            at=at,
            status=status,
            tier=tier,
            cursor=page.cursor,
            limit=page.limit,
        )
    await service.get_manager(session, manager_id=manager_id)
    return await customers.list_customers(
        reads,
        cursor=page.cursor,
        limit=page.limit,
        manager_id=manager_id,
        tier=tier,
        status=status,
    )
