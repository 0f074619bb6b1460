"""HTTP routes for scenarios: draft a re-division, preview, compare, activate, archive."""

import uuid
from typing import Annotated

from fastapi import Body, Query, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import OPERATORS, STAFF, allow
from app.api.deps import CurrentCaller, DbSession
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.errors import InvalidInput, problem_responses
from app.scenarios import service
from app.scenarios.schemas import (
    Comparison,
    PreviewOptions,
    PreviewOut,
    ScenarioCreate,
    ScenarioOut,
    ScenarioState,
    ScenarioUpdate,
)

router = PrefixedRouter(
    prefix="/scenarios",
    tags=["scenarios"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF, write=OPERATORS)],
)


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000, description="Kept on the ledger rows.")


@router.post(
    "",
    response_model=ScenarioOut,
    status_code=status.HTTP_201_CREATED,
    summary="Draft a re-division",
    responses=problem_responses(),
)
async def create_scenario(
    session: DbSession, caller: CurrentCaller, body: ScenarioCreate
) -> ScenarioOut:
    """Save a draft of everything a re-division changes: a rule set, manager changes (team,
    region, level, capacity, languages, industries, status, accepting_new) and new managers,
    tier changes (weight, minimum level), customer changes (tier, region, pinned) by list or
    by filter (`{"filter": {"region": "east-2"}, "set": {"region": "east"}}`). Nothing live
    changes until the scenario is activated."""
    return await service.create_scenario(session, data=body, actor=caller.name)


@router.get(
    "", response_model=Page[ScenarioOut], summary="List scenarios", responses=problem_responses()
)
async def list_scenarios(
    session: DbSession,
    page: PageQuery,
    state: Annotated[
        ScenarioState | None,
        Query(description="Default: drafts and activated scenarios (archived ones on request)."),
    ] = None,
) -> Page[ScenarioOut]:
    """Scenarios, newest first, with their latest preview's summary."""
    return await service.list_scenarios(session, cursor=page.cursor, limit=page.limit, state=state)


@router.get(
    "/compare",
    response_model=Comparison,
    summary="Compare scenarios",
    responses=problem_responses(404),
)
async def compare_scenarios(
    session: DbSession,
    ids: Annotated[
        str,
        Query(
            max_length=2000,
            description="Scenario ids, comma-separated (2 to 20).",
            examples=["0f8e…,7a1c…"],
        ),
    ],
) -> Comparison:
    """Previews side by side: moves (by reason), peak and spread of utilization after,
    continuity, violations left, and per-team workload before and after. A scenario not
    previewed yet is listed with empty figures."""
    try:
        parsed = list(dict.fromkeys(uuid.UUID(part.strip()) for part in ids.split(",")))
    except ValueError:
        raise InvalidInput(
            "ids must be comma-separated scenario ids.",
            errors=[{"loc": ["query", "ids"], "msg": "not a list of UUIDs"}],
        ) from None
    if not 1 <= len(parsed) <= 20:
        raise InvalidInput(
            "Compare 1 to 20 scenarios.",
            errors=[{"loc": ["query", "ids"], "msg": "1 to 20 ids"}],
        )
    return await service.compare_scenarios(session, ids=parsed)


@router.get(
    "/{scenario_id:uuid}",
    response_model=ScenarioOut,
    summary="Get a scenario",
    responses=problem_responses(404),
)
async def get_scenario(session: DbSession, scenario_id: uuid.UUID) -> ScenarioOut:
    """One scenario: its changes, state, latest preview's summary and activation."""
    return await service.get_scenario(session, scenario_id=scenario_id)


@router.patch(
    "/{scenario_id:uuid}",
    response_model=ScenarioOut,
    summary="Change a draft",
    responses=problem_responses(404, 409),
)
async def update_scenario(
    session: DbSession, scenario_id: uuid.UUID, body: ScenarioUpdate
) -> ScenarioOut:
    """Change a draft's name, description or changes (replaced whole; the stored preview is
    dropped). Activated and archived scenarios are 409."""
    return await service.update_scenario(session, scenario_id=scenario_id, data=body)


@router.post(
    "/{scenario_id:uuid}/archive",
    response_model=ScenarioOut,
    summary="Archive a draft",
    responses=problem_responses(404, 409, validation=False),
)
async def archive_scenario(session: DbSession, scenario_id: uuid.UUID) -> ScenarioOut:
    """Put a draft away; it stays readable and is listed with `state=archived`."""
    return await service.archive_scenario(session, scenario_id=scenario_id)


@router.post(
    "/{scenario_id:uuid}/preview",
    response_model=PreviewOut,
    summary="Preview a scenario",
    responses=problem_responses(404, 409),
)
async def preview_scenario(
    session: DbSession,
    caller: CurrentCaller,
    scenario_id: uuid.UUID,
    body: Annotated[PreviewOptions | None, Body()] = None,
) -> PreviewOut:
    """Against the live book with the scenario's changes applied in memory (nothing live
    changes): the plan with the fewest moves that makes every customer compliant under the
    new rules (only owners breaking a hard rule lose customers), optionally bringing
    utilization under `rebalance_to` (`fix_only: false`) within `max_moves`. Returns load
    per manager and team before and after, peak and spread, moves by reason, violations
    left and why, continuity and each decision's explanation; kept with digests of its
    inputs for activation."""
    return await service.preview_scenario(
        session, scenario_id=scenario_id, options=body or PreviewOptions(), actor=caller.name
    )


@router.get(
    "/{scenario_id:uuid}/preview",
    response_model=PreviewOut,
    summary="Get a scenario's preview",
    responses=problem_responses(404, 409),
)
async def get_preview(session: DbSession, scenario_id: uuid.UUID) -> PreviewOut:
    """The latest stored preview (409 `not_previewed` when there is none)."""
    return await service.get_preview(session, scenario_id=scenario_id)


@router.post(
    "/{scenario_id:uuid}/activate",
    response_model=ScenarioOut,
    summary="Activate a scenario",
    responses=problem_responses(404, 409),
)
async def activate_scenario(
    session: DbSession,
    caller: CurrentCaller,
    scenario_id: uuid.UUID,
    body: Annotated[ActivateIn | None, Body()] = None,
) -> ScenarioOut:
    """Apply the previewed scenario in one transaction: the rule set, the tier, manager and
    customer changes, and the preview's moves (ledger reason `redivision`, with outbound
    events); the violations of the new state are recorded. If anything the preview read
    changed since (customers, managers, tiers, rules), 409 `stale_scenario` names it and
    nothing is applied: preview again."""
    return await service.activate_scenario(
        session, scenario_id=scenario_id, actor=caller.name, note=body.note if body else None
    )
