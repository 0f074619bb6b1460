"""HTTP routes for API keys (admin only)."""

import uuid
from typing import Annotated

from fastapi import Query, Request, status

from app.api.auth import ADMINS, allow
from app.api.deps import CurrentCaller, DbSession
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.auth import service
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from app.core.pagination import Page
from app.core.schemas import QueryBool
from app.errors import problem_responses

router = PrefixedRouter(
    prefix="/api-keys",
    tags=["api-keys"],
    route_class=BatonRoute,
    dependencies=[allow(read=ADMINS, write=ADMINS)],
)


@router.get(
    "", response_model=Page[ApiKeyOut], summary="List API keys", responses=problem_responses()
)
async def list_api_keys(
    session: DbSession,
    page: PageQuery,
    include_revoked: Annotated[QueryBool, Query(description="Also list revoked keys.")] = False,
) -> Page[ApiKeyOut]:
    """API keys, newest first. Secrets are never shown again after creation."""
    return await service.list_keys(
        session, cursor=page.cursor, limit=page.limit, include_revoked=include_revoked
    )


@router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
    responses=problem_responses(409),
)
async def create_api_key(
    session: DbSession, caller: CurrentCaller, body: ApiKeyCreate
) -> ApiKeyCreated:
    """Create a key with a role. The response holds the key itself, **shown only once**; Baton
    keeps only a hash. The key's name is recorded as the actor of every change made with it."""
    return await service.create_key(
        session, name=body.name, role=body.role, expires_at=body.expires_at, actor=caller.name
    )


@router.get(
    "/{key_id}",
    response_model=ApiKeyOut,
    summary="Get an API key",
    responses=problem_responses(404),
)
async def get_api_key(session: DbSession, key_id: uuid.UUID) -> ApiKeyOut:
    """One key's name, role, prefix and dates (never its secret)."""
    return await service.get_key(session, key_id=key_id)


@router.delete(
    "/{key_id}",
    response_model=ApiKeyOut,
    summary="Revoke an API key",
    responses=problem_responses(404),
)
async def revoke_api_key(session: DbSession, request: Request, key_id: uuid.UUID) -> ApiKeyOut:
    """Revoke a key at once: requests with it get 401 from now on (other API processes stop
    accepting it within `BATON_AUTH_CACHE_SECONDS`). The row is kept so the audit trail still
    names it."""
    revoked = await service.revoke_key(session, key_id=key_id)
    cache = getattr(request.app.state, "key_cache", None)
    if cache is not None:
        cache.clear()
    return revoked
