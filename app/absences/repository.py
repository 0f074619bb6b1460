"""SQL for manager absences."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Manager, ManagerAbsence


async def now(session: AsyncSession) -> datetime:
    """The transaction's clock, the same one the engine's facts are read at."""
    return (await session.execute(select(func.now()))).scalar_one()


async def lock_manager(session: AsyncSession, manager_id: uuid.UUID) -> Manager | None:
    """The manager, locked: one writer per manager's calendar at a time."""
    return await session.scalar(select(Manager).where(Manager.id == manager_id).with_for_update())


async def manager_exists(session: AsyncSession, manager_id: uuid.UUID) -> bool:
    """Whether the manager exists."""
    return await session.scalar(select(Manager.id).where(Manager.id == manager_id)) is not None


async def manager_status(session: AsyncSession, manager_id: uuid.UUID) -> str | None:
    """The manager's status, or None when there is no such manager."""
    return await session.scalar(select(Manager.status).where(Manager.id == manager_id))


async def overlapping(
    session: AsyncSession,
    manager_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
    *,
    besides: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """One live absence of the manager that overlaps the period, other than ``besides``."""
    query = select(ManagerAbsence.id).where(
        ManagerAbsence.manager_id == manager_id,
        ManagerAbsence.cancelled_at.is_(None),
        ManagerAbsence.starts_at < ends_at,
        ManagerAbsence.ends_at > starts_at,
    )
    if besides is not None:
        query = query.where(ManagerAbsence.id != besides)
    return await session.scalar(query.limit(1))


async def add(session: AsyncSession, absence: ManagerAbsence) -> ManagerAbsence:
    """Insert the absence and read back its server defaults."""
    session.add(absence)
    await session.flush()
    await session.refresh(absence)
    return absence


async def list_for_manager(session: AsyncSession, manager_id: uuid.UUID) -> list[ManagerAbsence]:
    """The manager's absences by start."""
    rows = await session.scalars(
        select(ManagerAbsence)
        .where(ManagerAbsence.manager_id == manager_id)
        .order_by(ManagerAbsence.starts_at, ManagerAbsence.id)
    )
    return list(rows)


async def get_for_manager(
    session: AsyncSession, manager_id: uuid.UUID, absence_id: uuid.UUID
) -> ManagerAbsence | None:
    """One absence of the manager."""
    return await session.scalar(
        select(ManagerAbsence).where(
            ManagerAbsence.id == absence_id, ManagerAbsence.manager_id == manager_id
        )
    )


async def get(session: AsyncSession, absence_id: uuid.UUID) -> ManagerAbsence | None:
    """One absence by id."""
    return await session.get(ManagerAbsence, absence_id)
