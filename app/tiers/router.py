"""HTTP routes for tiers."""

from fastapi import Path, Response, status

from app.api.auth import OPERATORS, STAFF_AND_CRM, allow
from app.api.concurrency import ETAG_RESPONSE, IfMatch, set_etag
from app.api.deps import CurrentCaller, DbSession
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.errors import problem_responses
from app.flows import ownership
from app.tiers import service
from app.tiers.schemas import TierChangeOut, TierCreate, TierOut, TierUpdate

router = PrefixedRouter(
    prefix="/tiers",
    tags=["tiers"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF_AND_CRM, write=OPERATORS)],
)

CodePath = Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Tier code.")


@router.get("", response_model=Page[TierOut], summary="List tiers", responses=problem_responses())
async def list_tiers(session: DbSession, page: PageQuery) -> Page[TierOut]:
    """Tiers ordered by rank (1 = most important), with their active customer counts."""
    return await service.list_tiers(session, cursor=page.cursor, limit=page.limit)


@router.post(
    "",
    response_model=TierOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a tier",
    responses=problem_responses(409),
)
async def create_tier(session: DbSession, body: TierCreate) -> TierOut:
    """Create a customer tier with its workload weight and minimum manager level."""
    return await service.create_tier(session, data=body)


@router.get(
    "/{code}",
    response_model=TierOut,
    summary="Get a tier",
    responses=problem_responses(404) | ETAG_RESPONSE,
)
async def get_tier(session: DbSession, response: Response, code: str = CodePath) -> TierOut:
    """One tier by its code. The `ETag` header is its version, for `If-Match` on changes."""
    tier = await service.get_tier(session, code=code)
    set_etag(response, tier.version)
    return tier


@router.patch(
    "/{code}",
    response_model=TierChangeOut,
    summary="Update a tier",
    responses=problem_responses(404, 412, 428, 503) | ETAG_RESPONSE,
)
async def update_tier(
    session: DbSession,
    caller: CurrentCaller,
    response: Response,
    body: TierUpdate,
    precondition: IfMatch,
    code: str = CodePath,
) -> TierChangeOut:
    """Change a tier. A new weight changes the workload of every manager owning its customers;
    a higher `min_manager_level` is applied and the owners now below it are recorded as
    violations and listed in `violations_detected` (repair them with a `repair` plan); like a
    new rule set, it waits for the moves under way (503 with `Retry-After` if a long writer
    holds on for more than 5 s). Send `If-Match` with the ETag you read to refuse the change
    (412) if someone else changed the tier since."""
    tier = await ownership.update_tier(
        session, code=code, data=body, actor=caller.name, precondition=precondition
    )
    set_etag(response, tier.version)
    return tier


@router.delete(
    "/{code}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a tier",
    responses=problem_responses(404, 409, 412, 428),
)
async def delete_tier(session: DbSession, precondition: IfMatch, code: str = CodePath) -> None:
    """Delete a tier no customer uses; otherwise 409 says how many still use it. `If-Match`
    makes the delete conditional on the version you read."""
    await service.delete_tier(session, code=code, precondition=precondition)
