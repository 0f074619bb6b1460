"""HTTP routes for handovers: the resource, its life-cycle actions, items and checklist."""

import uuid
from typing import Annotated

from fastapi import Body, Query, status

from app.api.auth import OPERATORS, STAFF, allow
from app.api.deps import CurrentCaller, DbSession
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.errors import problem_responses
from app.handovers import aftercare, items, lifecycle, outcome, planning, views
from app.handovers.schemas import (
    ActionIn,
    Briefing,
    ChecklistTask,
    FeedbackIn,
    FeedbackOut,
    HandoverCreate,
    HandoverOut,
    HandoverReason,
    HandoverState,
    ItemOut,
    ItemOverride,
    ItemStatus,
    OutcomeOut,
    RefuseIn,
    RestoreOut,
    TaskUpdate,
)

router = PrefixedRouter(
    prefix="/handovers",
    tags=["handovers"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF, write=OPERATORS)],
)

OptionalAction = Annotated[ActionIn | None, Body()]


@router.get(
    "", response_model=Page[HandoverOut], summary="List handovers", responses=problem_responses()
)
async def list_handovers(
    session: DbSession,
    page: PageQuery,
    state: HandoverState | None = None,
    manager_id: Annotated[uuid.UUID | None, Query(description="The leaving manager.")] = None,
    reason: HandoverReason | None = None,
) -> Page[HandoverOut]:
    """Handovers, newest first, filtered by state, leaving manager and reason."""
    return await views.list_handovers(
        session,
        cursor=page.cursor,
        limit=page.limit,
        state=state,
        manager_id=manager_id,
        reason=reason,
    )


@router.post(
    "",
    response_model=HandoverOut,
    status_code=status.HTTP_201_CREATED,
    summary="Start a handover",
    responses=problem_responses(409),
)
async def create_handover(
    session: DbSession, caller: CurrentCaller, body: HandoverCreate
) -> HandoverOut:
    """Open a handover (state `draft`) for a manager's customers: all of them, or a `scope`
    (tiers and/or listed customers) for a partial handover. A `departure` marks the manager
    `departing`, which stops new assignments to them. If the manager has already departed
    (or `interim_now`), the customers go to `interim_manager_id` at once. A manager is in at
    most one open handover (409)."""
    return await planning.create_handover(session, data=body, actor=caller.name)


@router.get(
    "/{handover_id}",
    response_model=HandoverOut,
    summary="Get a handover",
    responses=problem_responses(404),
)
async def get_handover(session: DbSession, handover_id: uuid.UUID) -> HandoverOut:
    """The handover with item counts, checklist progress, allowed actions and audit trail."""
    return await views.get_handover(session, handover_id=handover_id)


@router.post(
    "/{handover_id}/plan",
    response_model=HandoverOut,
    summary="Plan (or re-plan) a handover",
    responses=problem_responses(404, 409),
)
async def plan_handover(
    session: DbSession, caller: CurrentCaller, handover_id: uuid.UUID, body: OptionalAction = None
) -> HandoverOut:
    """The engine proposes an owner for each customer in scope, never the leaving manager.
    Customers no eligible manager can take are `unplaced`, with reasons; they go to the pool
    at execution unless overridden. Re-planning keeps overrides and briefings."""
    return await planning.plan_handover(
        session, handover_id=handover_id, actor=caller.name, note=body.note if body else None
    )


@router.post(
    "/{handover_id}/approve",
    response_model=HandoverOut,
    summary="Approve a planned handover",
    responses=problem_responses(404, 409),
)
async def approve_handover(
    session: DbSession, caller: CurrentCaller, handover_id: uuid.UUID, body: OptionalAction = None
) -> HandoverOut:
    """Approve the plan. 409 `briefings_missing` while a customer of the top tier has no
    briefing; 409 `transfer_limit_exceeded` for customers already moved too often by
    handovers (pass `force: true` to accept them)."""
    return await lifecycle.approve_handover(
        session, handover_id=handover_id, data=body or ActionIn(), actor=caller.name
    )


@router.post(
    "/{handover_id}/execute",
    response_model=HandoverOut,
    summary="Execute an approved handover",
    responses=problem_responses(404, 409),
)
async def execute_handover(
    session: DbSession, caller: CurrentCaller, handover_id: uuid.UUID, body: OptionalAction = None
) -> HandoverOut:
    """Move every customer to its final owner in one transaction, through the ledger (reason
    `handover`, or `cover` for a leave with `until`). All or nothing; executing a completed
    handover again returns it unchanged. A future `effective_at` is a 409 unless
    `force: true` (the worker runs it at that time). A departure ends with the manager
    `departed`."""
    body = body or ActionIn()
    return await lifecycle.execute_handover(
        session, handover_id=handover_id, actor=caller.name, force=body.force, note=body.note
    )


@router.post(
    "/{handover_id}/cancel",
    response_model=HandoverOut,
    summary="Cancel a handover",
    responses=problem_responses(404, 409),
)
async def cancel_handover(
    session: DbSession, caller: CurrentCaller, handover_id: uuid.UUID, body: OptionalAction = None
) -> HandoverOut:
    """Stop a handover before completion. The manager gets their former status back; customers
    held by the interim owner go back to a manager who has not departed."""
    return await lifecycle.cancel_handover(
        session, handover_id=handover_id, data=body or ActionIn(), actor=caller.name
    )


@router.post(
    "/{handover_id}/rollback",
    response_model=RestoreOut,
    summary="Roll back a completed handover",
    responses=problem_responses(404, 409),
)
async def rollback_handover(
    session: DbSession, caller: CurrentCaller, handover_id: uuid.UUID, body: OptionalAction = None
) -> RestoreOut:
    """Give customers back to their previous owner (ledger reason `rollback`) where the owner
    has not changed since the handover; the others are listed in `not_restored` with why."""
    return await aftercare.rollback_handover(
        session, handover_id=handover_id, data=body or ActionIn(), actor=caller.name
    )


@router.get(
    "/{handover_id}/items",
    response_model=Page[ItemOut],
    summary="List a handover's items",
    responses=problem_responses(404),
)
async def list_items(
    session: DbSession,
    handover_id: uuid.UUID,
    page: PageQuery,
    item_status: Annotated[
        list[ItemStatus] | None, Query(alias="status", max_length=10, description="Filter.")
    ] = None,
) -> Page[ItemOut]:
    """One item per customer: proposed owner and explanation, override, final owner, status,
    briefing, notification and refusal."""
    return await views.list_items(
        session,
        handover_id=handover_id,
        cursor=page.cursor,
        limit=page.limit,
        status=item_status or (),
    )


@router.get(
    "/{handover_id}/items/{customer_id}",
    response_model=ItemOut,
    summary="Get one item",
    responses=problem_responses(404),
)
async def get_item(session: DbSession, handover_id: uuid.UUID, customer_id: uuid.UUID) -> ItemOut:
    """The item of one customer of the handover."""
    return await views.get_item(session, handover_id=handover_id, customer_id=customer_id)


@router.patch(
    "/{handover_id}/items/{customer_id}",
    response_model=ItemOut,
    summary="Override a proposed owner",
    responses=problem_responses(404, 409),
)
async def override_item(
    session: DbSession,
    caller: CurrentCaller,
    handover_id: uuid.UUID,
    customer_id: uuid.UUID,
    body: ItemOverride,
) -> ItemOut:
    """Choose this customer's new owner before approval. Checked against the engine's hard
    rules (409 `rule_violation` listing them) unless `force` with a `reason`, recorded on the
    item. `manager_id: null` removes the override."""
    return await items.override_item(
        session, handover_id=handover_id, customer_id=customer_id, data=body, actor=caller.name
    )


@router.put(
    "/{handover_id}/items/{customer_id}/briefing",
    response_model=ItemOut,
    summary="Write a customer briefing",
    responses=problem_responses(404, 409),
)
async def set_briefing(
    session: DbSession,
    caller: CurrentCaller,
    handover_id: uuid.UUID,
    customer_id: uuid.UUID,
    body: Briefing,
) -> ItemOut:
    """What the next owner must know: key contacts, open projects and progress, contract
    status, outstanding amount, notes. Required for the top tier before approval."""
    return await items.set_briefing(
        session, handover_id=handover_id, customer_id=customer_id, data=body, actor=caller.name
    )


@router.post(
    "/{handover_id}/items/{customer_id}/refuse",
    response_model=ItemOut,
    summary="Record a customer's refusal of the new owner",
    responses=problem_responses(404, 409),
)
async def refuse_item(
    session: DbSession,
    caller: CurrentCaller,
    handover_id: uuid.UUID,
    customer_id: uuid.UUID,
    body: Annotated[RefuseIn | None, Body()] = None,
) -> ItemOut:
    """Within the refusal window after the move (default 24 h), the customer is re-placed
    excluding the refused manager (ledger reason `refusal`); afterwards it is a 409
    `refusal_window_closed`."""
    return await aftercare.refuse_item(
        session,
        handover_id=handover_id,
        customer_id=customer_id,
        reason=body.reason if body else None,
        actor=caller.name,
    )


@router.patch(
    "/{handover_id}/checklist/{task}",
    response_model=HandoverOut,
    summary="Tick a checklist task",
    responses=problem_responses(404),
)
async def update_task(
    session: DbSession,
    caller: CurrentCaller,
    handover_id: uuid.UUID,
    task: ChecklistTask,
    body: TaskUpdate,
) -> HandoverOut:
    """Mark a task of the handover checklist done (or not), recording who and when."""
    return await items.update_task(
        session, handover_id=handover_id, task=task, data=body, actor=caller.name
    )


@router.get(
    "/{handover_id}/outcome",
    response_model=OutcomeOut,
    summary="Evaluate a handover",
    responses=problem_responses(404),
)
async def get_outcome(
    session: DbSession,
    handover_id: uuid.UUID,
    window_days: Annotated[
        int, Query(ge=1, le=730, description="Observation window after execution.")
    ] = 90,
) -> OutcomeOut:
    """Moved customers over the window after execution against a control group matched on
    tier and region (active and owned at execution, not moved during the window): retention
    and churn inside the window, satisfaction before vs latest, how each stratum was matched,
    refusals, time from creation to completion, and the team's feedback."""
    return await outcome.handover_outcome(session, handover_id=handover_id, window_days=window_days)


@router.post(
    "/{handover_id}/feedback",
    response_model=FeedbackOut,
    status_code=status.HTTP_201_CREATED,
    summary="Give feedback on a handover",
    responses=problem_responses(404),
)
async def add_feedback(
    session: DbSession, caller: CurrentCaller, handover_id: uuid.UUID, body: FeedbackIn
) -> FeedbackOut:
    """Record how the handover went for the team (seed 000 §6): a 0–10 score, a note, or
    both, with who and when. Listed in the outcome."""
    return await outcome.add_feedback(
        session, handover_id=handover_id, data=body, actor=caller.name
    )
