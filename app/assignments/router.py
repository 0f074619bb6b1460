"""HTTP routes for automated placement, rebalancing and workload reports."""

import uuid

from app.api.auth import OPERATORS, STAFF, allow
from app.api.deps import CurrentCaller, DbSession
from app.api.routing import BatonRoute, PrefixedRouter
from app.assignments import service
from app.assignments.schemas import (
    ApplyRequest,
    AssignOut,
    AssignRequest,
    PlanOut,
    PlanRequest,
    RebalanceRequest,
    WorkloadReport,
)
from app.errors import problem_responses

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
async def plan_placement(session: DbSession, body: PlanRequest) -> PlanOut:
    """What the engine would do with the selected customers (the pool by default): an owner or
    the pool for each, with score, reasons and explanation; loads before and after; balance
    metrics. Nothing is written. Keep `plan_token` to apply exactly this plan later. A plan
    that runs past `BATON_ENGINE_BUDGET_S` is abandoned: 503 `plan_over_budget`."""
    return await service.plan_placement(session, request=body)


@router.post(
    "/assignments/apply",
    response_model=PlanOut,
    summary="Apply a placement",
    responses=problem_responses(409, 503),
)
async def apply_placement(session: DbSession, caller: CurrentCaller, body: ApplyRequest) -> PlanOut:
    """Plan and write every move in one transaction through the ledger (reason `auto`). With a
    `plan_token` from a dry run, a plan whose inputs changed since is refused with 409."""
    return await service.apply_plan(session, request=body, actor=caller.name)


@router.post(
    "/customers/{customer_id}/assign",
    response_model=AssignOut,
    summary="Place one customer",
    responses=problem_responses(404, 409, 503),
)
async def assign_customer(
    session: DbSession, caller: CurrentCaller, customer_id: uuid.UUID, body: AssignRequest
) -> AssignOut:
    """Place one customer now with the engine, or with `manager_id` check that manager against
    every hard rule of the rule set (409 listing violations). `dry_run` only explains."""
    return await service.assign_customer(
        session, customer_id=customer_id, request=body, actor=caller.name
    )


@router.post(
    "/rebalance",
    response_model=PlanOut,
    summary="Rebalance workloads",
    responses=problem_responses(503),
)
async def rebalance(session: DbSession, caller: CurrentCaller, body: RebalanceRequest) -> PlanOut:
    """Bring every manager under the target utilization moving as few customers as needed.
    Pinned customers and customers moved in the last `min_days_since_move` days stay.
    `dry_run` (the default) shows the plan without writing it. Past `BATON_ENGINE_BUDGET_S`
    the plan is abandoned: 503 `plan_over_budget`, nothing written."""
    return await service.rebalance(session, request=body, actor=caller.name)


@router.get(
    "/reports/workload",
    response_model=WorkloadReport,
    summary="Workload report",
    responses=problem_responses(),
)
async def workload_report(session: DbSession) -> WorkloadReport:
    """Workload, capacity and utilization per manager (by tier), per team and per region, the
    pool size, and balance metrics (peak, spread, standard deviation of utilization)."""
    return await service.workload_report(session)
