"""API key use cases: create (shown once), list, revoke, authenticate, ensure at start-up."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.auth.keys import digest_matches, generate_key, parse_key
from app.auth.roles import Role
from app.auth.schemas import ApiKeyCreated, ApiKeyOut
from app.core.pagination import (
    Page,
    cursor_key,
    keyset_page,
)
from app.errors import Conflict, InvalidInput, NotFound, Unauthorized


@dataclass(frozen=True)
class AuthenticatedKey:
    """The caller behind a valid key."""

    id: uuid.UUID
    name: str
    role: Role


async def authenticate(session: AsyncSession, *, presented: str) -> AuthenticatedKey:
    """The key's identity, or Unauthorized: unknown, malformed, revoked and expired keys all
    get the same answer apart from the detail, which never echoes the key."""
    parsed = parse_key(presented)
    row = await repository.find_for_authentication(session, parsed.prefix) if parsed else None
    if parsed is None or row is None or not digest_matches(row.secret_hash, parsed.secret_hash):
        raise Unauthorized("The API key is not valid.")
    if row.revoked_at is not None:
        raise Unauthorized("The API key has been revoked.")
    if row.expired:
        raise Unauthorized("The API key has expired.")
    return AuthenticatedKey(id=row.id, name=row.name, role=Role(row.role))


async def create_key(
    session: AsyncSession,
    *,
    name: str,
    role: Role,
    actor: str,
    expires_at: datetime | None = None,
) -> ApiKeyCreated:
    """A new key; the only time its secret is returned."""
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= datetime.now(UTC):
            raise InvalidInput(
                "expires_at must be in the future.",
                errors=[{"loc": ["body", "expires_at"], "msg": "must be in the future"}],
            )
    if await repository.active_name_taken(session, name):
        raise Conflict(f"An active API key named '{name}' already exists.", field="name")
    key = generate_key()
    parsed = parse_key(key)
    assert parsed is not None
    row = await repository.insert_key(
        session,
        {
            "prefix": parsed.prefix,
            "secret_hash": parsed.secret_hash,
            "name": name,
            "role": role.value,
            "created_by": actor,
            "expires_at": expires_at,
        },
    )
    return ApiKeyCreated.model_validate({**asdict(row), "key": key})


async def ensure_key(session: AsyncSession, *, key: str, name: str, role: Role, actor: str) -> None:
    """Make ``key`` (chosen outside, e.g. ``BATON_BOOTSTRAP_ADMIN_KEY``) a working key with
    ``role``; repeated start-ups leave it as it is. A revoked key stays revoked."""
    parsed = parse_key(key)
    if parsed is None:
        raise InvalidInput(
            "The key must look like bt_<12 hex>_<32+ url-safe characters>; "
            "`baton apikey generate` prints one."
        )
    existing = await repository.find_active_by_name(session, name)
    if existing is not None and existing.prefix != parsed.prefix:
        await repository.revoke(session, existing.id)  # the configured key was rotated
    await repository.upsert_by_prefix(
        session,
        {
            "prefix": parsed.prefix,
            "secret_hash": parsed.secret_hash,
            "name": name,
            "role": role.value,
            "created_by": actor,
        },
    )


async def get_key(session: AsyncSession, *, key_id: uuid.UUID) -> ApiKeyOut:
    """One key (never its secret), or NotFound."""
    row = await repository.get(session, key_id)
    if row is None:
        raise NotFound(f"API key {key_id} does not exist.")
    return ApiKeyOut.model_validate(row)


async def list_keys(
    session: AsyncSession, *, cursor: str | None, limit: int, include_revoked: bool
) -> Page[ApiKeyOut]:
    """Keys, newest first."""
    after = cursor_key(cursor, (datetime, uuid.UUID))
    rows = await repository.list_page(
        session,
        after=(after[0], after[1]) if after else None,
        limit=limit + 1,
        include_revoked=include_revoked,
    )
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=ApiKeyOut.model_validate,
        key=lambda r: [r.created_at.isoformat(), str(r.id)],
    )
    return Page[ApiKeyOut](items=items, next_cursor=next_cursor)


async def revoke_key(session: AsyncSession, *, key_id: uuid.UUID) -> ApiKeyOut:
    """Revoke a key at once; requests with it get 401 from now on."""
    row = await repository.revoke(session, key_id)
    if row is None:
        raise NotFound(f"API key {key_id} does not exist.")
    return ApiKeyOut.model_validate(row)
