"""SQL for API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Result, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ApiKey
from app.db.rows import row_as, rows_as
from app.vocabulary import Role


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A key's public columns (never its digest)."""

    id: uuid.UUID
    prefix: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyToCheck:
    """What authentication reads of a key: its digest and whether it may still be used."""

    id: uuid.UUID
    name: str
    role: Role
    secret_hash: bytes
    expires_at: datetime | None
    revoked_at: datetime | None
    expired: bool


_PUBLIC = [c for c in ApiKey.__table__.c if c.name != "secret_hash"]

# Find the key and, at most once a minute, record that it was used. SKIP LOCKED keeps
# concurrent requests with the same key from queueing behind one another's transactions.
_AUTHENTICATE = text(
    """
    WITH touched AS (
        UPDATE api_keys SET last_used_at = now()
         WHERE id = (SELECT id FROM api_keys
                      WHERE prefix = :prefix
                        AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
                      FOR UPDATE SKIP LOCKED)
    )
    SELECT id, name, role, secret_hash, expires_at, revoked_at,
           (expires_at IS NOT NULL AND expires_at <= now()) AS expired
      FROM api_keys WHERE prefix = :prefix
    """
)


async def find_for_authentication(session: AsyncSession, prefix: str) -> KeyToCheck | None:
    """The key with this prefix (with its digest), touching ``last_used_at``."""
    row = (await session.execute(_AUTHENTICATE, {"prefix": prefix})).mappings().first()
    return None if row is None else row_as(KeyToCheck, row)


async def insert_key(session: AsyncSession, values: dict[str, Any]) -> KeyRow:
    """Add a key; returns its public columns."""
    stmt = insert(ApiKey).values(**values).returning(*_PUBLIC)
    return row_as(KeyRow, (await session.execute(stmt)).mappings().one())


async def upsert_by_prefix(session: AsyncSession, values: dict[str, Any]) -> None:
    """Add the key, or give an existing row with the same prefix this digest and role."""
    stmt = insert(ApiKey).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ApiKey.prefix],
        set_={"secret_hash": stmt.excluded.secret_hash, "role": stmt.excluded.role},
    )
    await session.execute(stmt)


async def get(session: AsyncSession, key_id: uuid.UUID) -> KeyRow | None:
    """One key's public columns."""
    stmt = select(*_PUBLIC).where(ApiKey.id == key_id)
    return _one(await session.execute(stmt))


async def list_page(
    session: AsyncSession,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    include_revoked: bool,
) -> list[KeyRow]:
    """Keys, newest first."""
    stmt = select(*_PUBLIC).order_by(ApiKey.created_at.desc(), ApiKey.id.desc()).limit(limit)
    if after is not None:
        stmt = stmt.where(func.row(ApiKey.created_at, ApiKey.id) < func.row(*after))
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return rows_as(KeyRow, (await session.execute(stmt)).mappings())


async def active_name_taken(session: AsyncSession, name: str) -> bool:
    """Whether an unrevoked key already has this name."""
    stmt = select(ApiKey.id).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
    return (await session.execute(stmt)).first() is not None


async def revoke(session: AsyncSession, key_id: uuid.UUID) -> KeyRow | None:
    """Mark a key revoked (idempotent: the first revocation time is kept)."""
    stmt = (
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
        .returning(*_PUBLIC)
    )
    return _one(await session.execute(stmt))


async def find_active_by_name(session: AsyncSession, name: str) -> KeyRow | None:
    """The unrevoked key with this name."""
    stmt = select(*_PUBLIC).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
    return _one(await session.execute(stmt))


def _one(result: Result[Any]) -> KeyRow | None:
    row = result.mappings().first()
    return None if row is None else row_as(KeyRow, row)
