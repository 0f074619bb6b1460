"""HTTP routes for tiers."""

from fastapi import APIRouter, Path, status

from app.api.auth import OPERATORS, STAFF_AND_CRM, allow
from app.api.deps import DbSession
from app.api.pagination import Page, PageQuery
from app.api.routing import BatonRoute
from app.errors import problem_responses
from app.tiers import service
from app.tiers.schemas import TierCreate, TierOut, TierUpdate

router = APIRouter(
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
    "/{code}", response_model=TierOut, summary="Get a tier", responses=problem_responses(404)
)
async def get_tier(session: DbSession, code: str = CodePath) -> TierOut:
    """One tier by its code."""
    return await service.get_tier(session, code=code)


@router.patch(
    "/{code}", response_model=TierOut, summary="Update a tier", responses=problem_responses(404)
)
async def update_tier(session: DbSession, body: TierUpdate, code: str = CodePath) -> TierOut:
    """Change a tier. A new weight changes the workload of every manager owning its customers."""
    return await service.update_tier(session, code=code, data=body)


@router.delete(
    "/{code}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a tier",
    responses=problem_responses(404, 409),
)
async def delete_tier(session: DbSession, code: str = CodePath) -> None:
    """Delete a tier no customer uses; otherwise 409 says how many still use it."""
    await service.delete_tier(session, code=code)
