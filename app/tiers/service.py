"""Tier use cases."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.concurrency import Precondition
from app.core.pagination import (
    Page,
    cursor_key,
    keyset_page,
)
from app.errors import Conflict, NotFound
from app.tiers import repository
from app.tiers.schemas import TierCreate, TierOut, TierUpdate


async def get_tier(session: AsyncSession, *, code: str) -> TierOut:
    """The tier, or NotFound."""
    row = await repository.get(session, code)
    if row is None:
        raise NotFound(f"Tier '{code}' does not exist.")
    return TierOut.model_validate(row)


async def list_tiers(session: AsyncSession, *, cursor: str | None, limit: int) -> Page[TierOut]:
    """Tiers by rank."""
    after = cursor_key(cursor, (int, str))
    rows = await repository.list_page(
        session, after=(after[0], after[1]) if after else None, limit=limit + 1
    )
    items, next_cursor = keyset_page(
        rows, limit=limit, item=TierOut.model_validate, key=lambda r: [r.rank, r.code]
    )
    return Page[TierOut](items=items, next_cursor=next_cursor)


async def create_tier(session: AsyncSession, *, data: TierCreate) -> TierOut:
    """Create a tier; a duplicate code is a conflict."""
    if await repository.get(session, data.code) is not None:
        raise Conflict(f"Tier '{data.code}' already exists.")
    await repository.insert(session, data.model_dump())
    return await get_tier(session, code=data.code)


async def _lock_checked(
    session: AsyncSession, code: str, precondition: Precondition | None
) -> None:
    """Lock the tier row and check the client's If-Match against its version."""
    version = await repository.lock_version(session, code)
    if version is None:
        raise NotFound(f"Tier '{code}' does not exist.")
    if precondition is not None:
        precondition.check(version, f"Tier '{code}'")


async def update_tier(
    session: AsyncSession, *, code: str, data: TierUpdate, precondition: Precondition | None = None
) -> TierOut:
    """Change a tier's fields (a new weight changes every owner's workload at once)."""
    await _lock_checked(session, code, precondition)
    values = data.model_dump(exclude_unset=True)
    if values and not await repository.update_fields(session, code, values):
        raise NotFound(f"Tier '{code}' does not exist.")
    return await get_tier(session, code=code)


async def delete_tier(
    session: AsyncSession, *, code: str, precondition: Precondition | None = None
) -> None:
    """Delete an unused tier; a tier that customers use is refused."""
    await _lock_checked(session, code, precondition)
    used = await repository.count_customers(session, code)
    if used:
        raise Conflict(
            f"Tier '{code}' is used by {used} customer(s); move them to another tier first.",
            customer_count=used,
        )
    await repository.delete(session, code)
