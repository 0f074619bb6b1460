"""HTTP routes for the public pool: reclaim policies, the reclaim dry run, claims."""

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query, status

from app.api.auth import OPERATORS, OPERATORS_AND_CRM, STAFF_AND_CRM, allow
from app.api.deps import CurrentCaller, DbSession
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.core.schemas import AwareInstant
from app.customers import service as customers
from app.customers.schemas import CustomerOut
from app.errors import problem_responses
from app.pool import service
from app.pool.schemas import (
    BatchClaimIn,
    BatchClaimOut,
    ClaimIn,
    PoolCustomer,
    ReclaimPolicyIn,
    ReclaimPolicyList,
    ReclaimPolicyOut,
    ReclaimPreview,
)

router = PrefixedRouter(
    prefix="/pool",
    tags=["pool"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF_AND_CRM, write=OPERATORS, delete=OPERATORS)],
)
claims = PrefixedRouter(
    prefix="/customers",
    tags=["pool"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF_AND_CRM, write=OPERATORS_AND_CRM)],
)


@router.get(
    "/customers",
    response_model=Page[PoolCustomer],
    summary="The pool and why each customer waits",
    responses=problem_responses(),
)
async def list_pool(
    session: DbSession,
    page: PageQuery,
    engine_reason: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[a-z_:]+$",
            description="Keep only the page's customers with this engine reason "
            "(`no_eligible_manager`, `no_capacity`, `intake_cap`, `outside_hours`…) or "
            "`placeable`; the page may hold fewer items, `next_cursor` walks on.",
        ),
    ] = None,
) -> Page[PoolCustomer]:
    """Customers without an owner, by id: since when each waits and why — the stored reason
    (never placed, reclaimed for inactivity, or taken off its owner otherwise) and the
    engine's: what a placement now would do (`placeable`, `engine_reasons`), computed in one
    engine call for the page."""
    return await service.list_waiting(
        session, cursor=page.cursor, limit=page.limit, engine_reason=engine_reason
    )


@router.get(
    "/policies",
    response_model=ReclaimPolicyList,
    summary="Reclaim policies",
    responses=problem_responses(),
)
async def list_policies(session: DbSession) -> ReclaimPolicyList:
    """Every tier's pool rules."""
    return await service.list_policies(session)


@router.put(
    "/policies/{tier}",
    response_model=ReclaimPolicyOut,
    summary="Set a tier's reclaim policy",
    responses=problem_responses(404),
)
async def put_policy(session: DbSession, tier: str, body: ReclaimPolicyIn) -> ReclaimPolicyOut:
    """Create or replace a tier's pool rules: days without follow-up before a customer
    returns to the pool, days of warning, the former owner's cooldown, the daily claim cap."""
    return await service.put_policy(session, tier=tier, data=body)


@router.get(
    "/policies/{tier}",
    response_model=ReclaimPolicyOut,
    summary="A tier's reclaim policy",
    responses=problem_responses(404),
)
async def get_policy(session: DbSession, tier: str) -> ReclaimPolicyOut:
    """The tier's pool rules."""
    return await service.get_policy(session, tier=tier)


@router.delete(
    "/policies/{tier}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a tier's reclaim policy",
    responses=problem_responses(404),
)
async def delete_policy(session: DbSession, tier: str) -> None:
    """Stop reclaiming the tier's customers."""
    await service.delete_policy(session, tier=tier)


@router.get(
    "/reclaims",
    response_model=ReclaimPreview,
    summary="What the next reclaim sweep would return to the pool",
    responses=problem_responses(),
)
async def preview_reclaims(
    session: DbSession,
    at: Annotated[
        AwareInstant | None, Query(description="The sweep's instant (default: now).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> ReclaimPreview:
    """Dry run of the reclaim sweep: the customers it would return to the pool at `at`
    (already warned long enough, no follow-up for the tier's days). Nothing changes."""
    return await service.preview_reclaim(session, now=at or datetime.now(UTC), limit=limit)


@router.post(
    "/claims",
    response_model=BatchClaimOut,
    summary="Claim several customers from the pool",
    responses=problem_responses(),
)
async def claim_customers(
    session: DbSession, caller: CurrentCaller, body: BatchClaimIn
) -> BatchClaimOut:
    """Claim up to 100 pool customers for one manager (operators; a CRM claims one at a
    time through `/v1/customers/{id}/claim`), each checked like a single claim
    (placement guard, daily claim cap, cooldown); the result says, per customer, whether it
    was claimed or the code that refused it."""
    return await service.claim_many(
        session,
        customer_ids=body.customer_ids,
        manager_id=body.manager_id,
        actor=caller.name,
        now=datetime.now(UTC),
    )


@claims.post(
    "/{customer_id}/claim",
    response_model=CustomerOut,
    summary="Claim a customer from the pool",
    responses=problem_responses(404, 409, 422),
)
async def claim_customer(
    session: DbSession, caller: CurrentCaller, customer_id: uuid.UUID, body: ClaimIn
) -> CustomerOut:
    """Take a pool customer for a manager (ledger reason `claim`). 409 with `code`:
    `not_in_pool`, `claim_cooldown` (the former owner too soon after a reclaim),
    `claim_cap_reached` (the tier's daily claim cap), `rule_violation` (the placement guard:
    absent, intake cap, level, capacity…)."""
    await service.claim(
        session,
        customer_id=customer_id,
        manager_id=body.manager_id,
        actor=caller.name,
        now=datetime.now(UTC),
    )
    return await customers.get_customer(session, customer_id=customer_id)
