"""SQL for handovers themselves: the row, its checklist and audit trail, what falls due.
The items' SQL is in ``item_repository``, execution and notifications in
``execution_repository``, the outcome in ``outcome_repository``. Bulk work is set-based."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    HANDOVER_OPEN_STATES,
    HANDOVER_TASKS,
    Handover,
    HandoverEvent,
    HandoverItem,
    HandoverTask,
)
from app.db.rows import row_as, rows_as
from app.vocabulary import HandoverReason, HandoverState, ManagerStatus, Strategy

PENDING_ITEM_STATUSES = ("pending", "proposed", "overridden", "unplaced")


@dataclass(frozen=True, slots=True)
class HandoverRow:
    """A handover as stored."""

    id: uuid.UUID
    from_manager_id: uuid.UUID
    reason: HandoverReason
    strategy: Strategy
    successor_id: uuid.UUID | None
    interim_manager_id: uuid.UUID | None
    interim_applied_at: datetime | None
    state: HandoverState
    scope: dict[str, Any] | None
    effective_at: datetime | None
    until: datetime | None
    notify_customers: bool
    force_transfer_limit: bool
    prior_manager_status: ManagerStatus
    plan_metrics: dict[str, Any] | None
    note: str | None
    created_by: str
    completed_at: datetime | None
    cover_returned_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


async def get(
    session: AsyncSession, handover_id: uuid.UUID, *, lock: bool = False
) -> HandoverRow | None:
    """One handover row; ``lock`` takes its row lock (serialises every action on it)."""
    stmt = select(*Handover.__table__.c).where(Handover.id == handover_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else row_as(HandoverRow, row)


async def open_for_manager(session: AsyncSession, manager_id: uuid.UUID) -> uuid.UUID | None:
    """The open handover of this manager, if any."""
    return await session.scalar(
        select(Handover.id).where(
            Handover.from_manager_id == manager_id,
            Handover.state.in_(HANDOVER_OPEN_STATES),
        )
    )


async def list_page(
    session: AsyncSession,
    *,
    filters: list[ColumnElement[bool]],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[HandoverRow]:
    """Handovers newest first (created_at, id), after the given key."""
    stmt = (
        select(*Handover.__table__.c)
        .where(*filters)
        .order_by(Handover.created_at.desc(), Handover.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(func.row(Handover.created_at, Handover.id) < func.row(*after))
    return rows_as(HandoverRow, (await session.execute(stmt)).mappings())


async def insert_handover(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID:
    """Add a handover with its checklist tasks; returns the id."""
    handover_id = await session.scalar(insert(Handover).values(**values).returning(Handover.id))
    assert handover_id is not None
    await session.execute(
        insert(HandoverTask), [{"handover_id": handover_id, "task": t} for t in HANDOVER_TASKS]
    )
    return handover_id


async def update_handover(
    session: AsyncSession, handover_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Change some fields and bump the version."""
    await session.execute(
        update(Handover)
        .where(Handover.id == handover_id)
        .values(**values, version=Handover.version + 1, updated_at=func.now())
    )


async def add_event(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    action: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit entry."""
    await session.execute(
        insert(HandoverEvent).values(
            handover_id=handover_id,
            action=action,
            from_state=from_state,
            to_state=to_state,
            actor=actor,
            at=at,
            detail=detail,
        )
    )


async def events_for(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[RowMapping]]:
    """Audit entries of several handovers, oldest first."""
    rows = await session.execute(
        select(*HandoverEvent.__table__.c)
        .where(HandoverEvent.handover_id.in_(ids))
        .order_by(HandoverEvent.handover_id, HandoverEvent.id)
    )
    out: dict[uuid.UUID, list[RowMapping]] = defaultdict(list)
    for row in rows.mappings():
        out[row["handover_id"]].append(row)
    return out


async def tasks_for(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[RowMapping]]:
    """Checklist tasks of several handovers, in checklist order."""
    order = {t: i for i, t in enumerate(HANDOVER_TASKS)}
    rows = await session.execute(
        select(*HandoverTask.__table__.c).where(HandoverTask.handover_id.in_(ids))
    )
    out: dict[uuid.UUID, list[RowMapping]] = defaultdict(list)
    for row in sorted(rows.mappings(), key=lambda r: order[r["task"]]):
        out[row["handover_id"]].append(row)
    return out


async def counts_for(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Items per status, with ``total`` and ``briefed``, for several handovers."""
    rows = await session.execute(
        select(
            HandoverItem.handover_id,
            HandoverItem.status,
            func.count(),
            func.count(HandoverItem.briefing),
        )
        .where(HandoverItem.handover_id.in_(ids))
        .group_by(HandoverItem.handover_id, HandoverItem.status)
    )
    out: dict[uuid.UUID, dict[str, int]] = {i: {"total": 0, "briefed": 0} for i in ids}
    for handover_id, status, count, briefed in rows:
        counts = out[handover_id]
        counts[status] = int(count)
        counts["total"] += int(count)
        counts["briefed"] += int(briefed)
    return out


async def set_task(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    task: str,
    done: bool,
    actor: str,
    at: datetime,
    note: str | None,
) -> None:
    """Mark a checklist task done (who, when) or not done."""
    await session.execute(
        update(HandoverTask)
        .where(HandoverTask.handover_id == handover_id, HandoverTask.task == task)
        .values(
            done=done,
            done_by=actor if done else None,
            done_at=at if done else None,
            note=note,
        )
    )


async def due_handovers(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Approved handovers whose effective time has come, oldest first."""
    rows = await session.execute(
        select(Handover.id)
        .where(
            Handover.state == "approved",
            Handover.effective_at.is_not(None),
            Handover.effective_at <= now,
        )
        .order_by(Handover.effective_at)
    )
    return list(rows.scalars())


async def due_cover_returns(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Completed leave handovers whose cover period has ended and not been returned yet."""
    rows = await session.execute(
        select(Handover.id)
        .where(
            Handover.state == "completed",
            Handover.until.is_not(None),
            Handover.until <= now,
            Handover.cover_returned_at.is_(None),
        )
        .order_by(Handover.until)
    )
    return list(rows.scalars())


async def lock_unavailable_managers(
    session: AsyncSession, manager_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Share-lock these managers' rows (none can start leaving until the transaction ends);
    return those no longer active."""
    rows = await session.execute(
        text(
            "SELECT id, status FROM managers WHERE id = ANY(CAST(:ids AS uuid[])) "
            "ORDER BY id FOR SHARE"
        ),
        {"ids": list(manager_ids)},
    )
    return {manager_id for manager_id, status in rows.all() if status != "active"}
