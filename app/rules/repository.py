"""SQL for the rule set's versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import RuleSetVersion

_WRITERS_LOCK = 0x7275_6C65
"""Advisory lock taken by each writer, so two writers cannot pick the same version number."""


async def latest(session: AsyncSession) -> RuleSetVersion | None:
    """The newest stored version, or None."""
    return await session.scalar(
        select(RuleSetVersion).order_by(RuleSetVersion.version.desc()).limit(1)
    )


async def all_versions(session: AsyncSession) -> Sequence[RuleSetVersion]:
    """Every stored version, newest first."""
    return (
        await session.scalars(select(RuleSetVersion).order_by(RuleSetVersion.version.desc()))
    ).all()


async def insert_next(
    session: AsyncSession, *, rules: dict[str, Any], actor: str, note: str | None
) -> RuleSetVersion:
    """Store ``rules`` as the next version (writers serialised until commit); ``rules`` gets
    its ``version`` filled in."""
    await session.execute(select(func.pg_advisory_xact_lock(_WRITERS_LOCK)))
    version = (await session.scalar(select(func.max(RuleSetVersion.version))) or 0) + 1
    row = RuleSetVersion(
        version=version, rules={**rules, "version": version}, created_by=actor, note=note
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row
