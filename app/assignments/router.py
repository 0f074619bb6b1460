"""HTTP routes for automated placement, rebalancing and workload reports."""

import uuid
from typing import Annotated, Literal

from fastapi import Query, Response

from app.api.auth import OPERATORS, STAFF, allow
from app.api.deps import CurrentCaller, DbSession, Reads
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.assignments import compliance, service
from app.assignments.schemas import (
    ApplyRequest,
    AssignOut,
    AssignRequest,
    PlanOut,
    PlanRequest,
    RebalanceRequest,
    ViolationOut,
    WorkloadReport,
)
from app.audit import service as audit
from app.core.pagination import Page
from app.errors import problem_responses
from app.managers.schemas import ManagerStatus

router = PrefixedRouter(
    tags=["assignments"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF, write=OPERATORS)],
)


@router.post(
    "/assignments/plan",
    response_model=PlanOut,
    summary="Plan a placement (dry run)",
    responses=problem_responses(503),
)
async def plan_placement(session: DbSession, caller: CurrentCaller, body: PlanRequest) -> PlanOut:
    """What the engine would do with the selected customers (the pool by default; with
    `mode: repair`, only the customers whose owner breaks a hard rule): an owner or the pool
    for each, with score, reasons and explanation; loads before and after; balance metrics.
    No owner changes. Keep `plan_token` to apply exactly this plan after review. A plan
    that runs past `BATON_ENGINE_BUDGET_S` is abandoned: 503 `plan_over_budget`."""
    return await service.plan_placement(session, request=body, actor=caller.name)


@router.post(
    "/assignments/apply",
    response_model=PlanOut,
    summary="Apply a placement",
    responses=problem_responses(409, 503),
)
async def apply_placement(session: DbSession, caller: CurrentCaller, body: ApplyRequest) -> PlanOut:
    """Apply a reviewed plan: send only its `plan_token`; every move is written in one
    transaction through the ledger (reason `auto`, or `repair`). If any input the plan read
    changed since (customers, managers, workloads, tiers, rules), 409 `stale_plan` lists what
    changed: plan again and review. Without a token, `review: skip` is required (audited)."""
    return await service.apply_plan(session, request=body, actor=caller.name)


@router.post(
    "/customers/{customer_id}/assign",
    response_model=AssignOut,
    summary="Place one customer",
    responses=problem_responses(404, 409, 503),
)
async def assign_customer(
    session: DbSession,
    reads: Reads,
    caller: CurrentCaller,
    customer_id: uuid.UUID,
    body: AssignRequest,
) -> Response:
    """Place one customer now with the engine, or with `manager_id` check that manager against
    every hard rule of the rule set (409 listing violations). `dry_run` only explains: it
    changes nothing and is not recorded in the audit trail."""
    out = await service.assign_customer(
        session, customer_id=customer_id, request=body, actor=caller.name, reads=reads
    )
    if body.dry_run:
        audit.unchanged(session)  # a read: the request records no audit event
    # Serialised as is: the service built it from the engine's decision, so validating it
    # again on the way out would only cost time.
    return Response(out.model_dump_json(), media_type="application/json")


@router.post(
    "/rebalance",
    response_model=PlanOut,
    summary="Rebalance workloads",
    responses=problem_responses(409, 503),
)
async def rebalance(session: DbSession, caller: CurrentCaller, body: RebalanceRequest) -> PlanOut:
    """Bring every manager under the target utilization moving as few customers as needed.
    Pinned customers and customers moved in the last `min_days_since_move` days stay.
    `dry_run` (the default) shows the plan without writing it. Past `BATON_ENGINE_BUDGET_S`
    the plan is abandoned: 503 `plan_over_budget`, nothing written. 409 if the customers'
    attributes kept changing while the book was read (retry)."""
    return await service.rebalance(session, request=body, actor=caller.name)


@router.get(
    "/reports/workload",
    response_model=WorkloadReport,
    summary="Workload report",
    responses=problem_responses(),
)
async def workload_report(
    session: DbSession,
    team: Annotated[str | None, Query(max_length=200)] = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
    level: Annotated[int | None, Query(ge=1, le=5)] = None,
    status: ManagerStatus | None = None,
) -> WorkloadReport:
    """Workload, capacity and utilization per manager (by tier), per team and per region, the
    pool size, and balance metrics (peak, spread, standard deviation of utilization). The
    filters choose the managers the report covers (departed managers are never listed)."""
    return await service.workload_report(
        session, team=team, region=region, level=level, status=status
    )


@router.get(
    "/violations",
    response_model=Page[ViolationOut],
    summary="List ownership violations",
    responses=problem_responses(),
)
async def list_violations(
    session: DbSession,
    page: PageQuery,
    state: Annotated[
        Literal["open", "resolved", "all"],
        Query(description="`open` (default): violations that hold now."),
    ] = "open",
    manager_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    rule: Annotated[str | None, Query(max_length=100, description="A rule id.")] = None,
    tier: Annotated[str | None, Query(max_length=64)] = None,
    team: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[ViolationOut]:
    """Customers whose owner breaks a hard rule (tier minimum level, departed owner, a rule
    of the rule set), with the rules, the change that caused it and since when. Every write
    that makes an owner non-compliant records one here; a `repair` plan
    (`POST /v1/assignments/plan {"mode": "repair"}`) moves exactly these customers."""
    return await compliance.list_violations(
        session,
        cursor=page.cursor,
        limit=page.limit,
        state=state,
        manager_id=manager_id,
        customer_id=customer_id,
        rule=rule,
        tier=tier,
        team=team,
    )
