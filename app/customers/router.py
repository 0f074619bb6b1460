"""HTTP routes for customers, their history and owner lookups."""

import uuid
from typing import Annotated

from fastapi import Path, Query, Response, status

from app.api.auth import OPERATORS, OPERATORS_AND_CRM, STAFF_AND_CRM, allow
from app.api.concurrency import ETAG_RESPONSE, IfMatch, etag, set_etag
from app.api.deps import CurrentCaller, DbSession, Reads
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.core.schemas import Instant, QueryBool
from app.customers import service
from app.customers.schemas import (
    CustomerChangeOut,
    CustomerCreate,
    CustomerOut,
    CustomerSort,
    CustomerStatus,
    CustomerUpdate,
    LedgerRowOut,
    OwnerAtOut,
)
from app.errors import problem_responses

router = PrefixedRouter(
    prefix="/customers",
    tags=["customers"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF_AND_CRM, write=OPERATORS_AND_CRM, delete=OPERATORS)],
)

Force = Annotated[
    QueryBool,
    Query(
        description="Override the hard rules of a manual assignment (admin and operator keys "
        "only; 403 otherwise); the rules overridden are recorded in the ledger and the audit "
        "trail."
    ),
]


@router.get(
    "", response_model=Page[CustomerOut], summary="List customers", responses=problem_responses()
)
async def list_customers(
    reads: Reads,
    page: PageQuery,
    tier: Annotated[str | None, Query(max_length=64)] = None,
    status: CustomerStatus | None = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
    manager_id: uuid.UUID | None = None,
    unassigned: Annotated[QueryBool | None, Query(description="true: only the pool.")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the name.")] = None,
    sort: Annotated[
        CustomerSort | None,
        Query(description="Order (`-`: descending; `tier` by rank); default: by id."),
    ] = None,
) -> Page[CustomerOut]:
    """Customers, filtered; `unassigned=true` lists the pool. With `sort`, pages follow that
    order (ties by id) and a `next_cursor` only continues the same sort."""
    return await service.list_customers(
        reads,
        cursor=page.cursor,
        limit=page.limit,
        tier=tier,
        status=status,
        region=region,
        manager_id=manager_id,
        unassigned=unassigned,
        q=q,
        sort=sort,
    )


@router.post(
    "",
    response_model=CustomerOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer",
    responses=problem_responses(403, 409),
)
async def create_customer(
    session: DbSession, caller: CurrentCaller, body: CustomerCreate, force: Force = False
) -> CustomerOut:
    """Create a customer. With `manager_id` it is assigned at once: a manual assignment,
    checked by the placement guard against every hard rule (tier minimum level, manager
    active and accepting, capacity, the rule set's eligibility rules; 409 listing them).
    Without it the customer waits in the pool."""
    return await service.create_customer(
        session, data=body, force=force, actor=caller.name, role=caller.role
    )


@router.get(
    "/by-ref/{external_ref:path}",
    response_model=CustomerOut,
    summary="Get a customer by its CRM id",
    responses=problem_responses(404) | ETAG_RESPONSE,
)
async def get_customer_by_ref(
    reads: Reads, response: Response, external_ref: Annotated[str, Path(max_length=200)]
) -> CustomerOut:
    """The customer whose `external_ref` (its id in the CRM) is this. The `ETag` header is
    the customer's version, for `If-Match` on changes."""
    customer = await service.read_customer_by_ref(reads, external_ref=external_ref)
    set_etag(response, customer.version)
    return customer


@router.get(
    "/{customer_id}",
    response_model=CustomerOut,
    summary="Get a customer",
    responses=problem_responses(404) | ETAG_RESPONSE,
)
async def get_customer(reads: Reads, response: Response, customer_id: uuid.UUID) -> CustomerOut:
    """One customer; `manager_id: null` means it is in the pool. The `ETag` header is the
    customer's version, for `If-Match` on changes."""
    customer = await service.read_customer(reads, customer_id=customer_id)
    set_etag(response, customer.version)
    return customer


@router.patch(
    "/{customer_id}",
    response_model=CustomerChangeOut,
    summary="Update a customer",
    responses=problem_responses(403, 404, 409, 412, 428) | ETAG_RESPONSE,
)
async def update_customer(
    session: DbSession,
    caller: CurrentCaller,
    customer_id: uuid.UUID,
    body: CustomerUpdate,
    precondition: IfMatch,
    force: Force = False,
) -> Response:
    """Change a customer. Setting `manager_id` is a manual assignment through the placement
    guard (409 listing the hard rules it breaks) written to the ledger (reason `manual`);
    `null` sends the customer to the pool. A change of tier or of attributes the rules read
    that leaves the current owner non-compliant is applied, recorded as a violation and
    listed in `violations_detected`. With `If-Match` the change is refused (412) if the
    customer changed since you read it."""
    customer = await service.update_customer(
        session,
        customer_id=customer_id,
        data=body,
        force=force,
        actor=caller.name,
        role=caller.role,
        precondition=precondition,
    )
    # Built and validated by the service: serialised once, not validated again.
    return Response(
        customer.model_dump_json(),
        media_type="application/json",
        headers={"ETag": etag(customer.version)},
    )


@router.delete(
    "/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a customer",
    responses=problem_responses(404, 409, 412, 428),
)
async def delete_customer(
    session: DbSession, customer_id: uuid.UUID, precondition: IfMatch
) -> None:
    """Delete a customer created by mistake. One with ownership history is kept (set it
    `churned` instead): the ledger is never rewritten."""
    await service.delete_customer(session, customer_id=customer_id, precondition=precondition)


@router.get(
    "/{customer_id}/history",
    response_model=Page[LedgerRowOut],
    summary="Ownership history",
    responses=problem_responses(404),
)
async def get_history(
    session: DbSession, customer_id: uuid.UUID, page: PageQuery
) -> Page[LedgerRowOut]:
    """Every period of ownership of this customer, newest first, with who, why and when."""
    return await service.get_history(
        session, customer_id=customer_id, cursor=page.cursor, limit=page.limit
    )


@router.get(
    "/{customer_id}/owner",
    response_model=OwnerAtOut,
    summary="Owner at an instant",
    responses=problem_responses(404),
)
async def get_owner(
    session: DbSession,
    customer_id: uuid.UUID,
    at: Annotated[Instant | None, Query(description="ISO 8601 instant; default now.")] = None,
) -> OwnerAtOut:
    """Who owned this customer at `at`, answered from the ledger (no retention cap)."""
    return await service.get_owner_at(session, customer_id=customer_id, at=at)
