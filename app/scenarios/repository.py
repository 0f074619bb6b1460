"""SQL for scenarios, and the reads of the live book a preview needs beyond the loaders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Scenario
from app.db.rows import row_as, rows_as
from app.vocabulary import ScenarioState


@dataclass(frozen=True, slots=True)
class ScenarioRow:
    """A stored scenario; ``preview_moves`` only when asked for (it can be large)."""

    id: uuid.UUID
    name: str
    description: str | None
    state: ScenarioState
    changes: dict[str, Any]
    created_by: str
    preview: dict[str, Any] | None
    preview_options: dict[str, Any] | None
    preview_digests: dict[str, str] | None
    previewed_at: datetime | None
    previewed_by: str | None
    activated_at: datetime | None
    activated_by: str | None
    activation: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    version: int
    preview_moves: bytes | None = None


_LIST_COLUMNS = [c for c in Scenario.__table__.c if c.key != "preview_moves"]


async def insert_scenario(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID:
    """Add a scenario; returns its id."""
    return (await session.execute(insert(Scenario).values(**values).returning(Scenario.id))).one()[
        0
    ]


async def get(
    session: AsyncSession, scenario_id: uuid.UUID, *, lock: bool = False, moves: bool = False
) -> ScenarioRow | None:
    """One scenario (its stored moves only when asked); ``lock`` takes its row lock."""
    columns = list(Scenario.__table__.c) if moves else _LIST_COLUMNS
    stmt = select(*columns).where(Scenario.id == scenario_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else row_as(ScenarioRow, row)


async def get_many(session: AsyncSession, ids: list[uuid.UUID]) -> list[ScenarioRow]:
    """Scenarios by id (without their stored moves)."""
    stmt = select(*_LIST_COLUMNS).where(Scenario.id.in_(ids))
    return rows_as(ScenarioRow, (await session.execute(stmt)).mappings())


async def list_page(
    session: AsyncSession,
    *,
    states: list[str],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[ScenarioRow]:
    """Scenarios newest first, in the given states."""
    stmt = (
        select(*_LIST_COLUMNS)
        .where(Scenario.state.in_(states))
        .order_by(Scenario.created_at.desc(), Scenario.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(func.row(Scenario.created_at, Scenario.id) < func.row(after[0], after[1]))
    return rows_as(ScenarioRow, (await session.execute(stmt)).mappings())


async def update_fields(
    session: AsyncSession, scenario_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Change some fields and bump the version."""
    await session.execute(
        update(Scenario)
        .where(Scenario.id == scenario_id)
        .values(**values, version=Scenario.version + 1, updated_at=func.now())
    )


async def departed_owners(session: AsyncSession) -> list[uuid.UUID]:
    """Departed managers that still own active customers (their customers are in the book)."""
    rows = await session.scalars(
        text(
            """
            SELECT m.id FROM managers AS m
             WHERE m.status = 'departed'
               AND EXISTS (SELECT 1 FROM customers AS c
                            WHERE c.manager_id = m.id AND c.status = 'active')
            """
        )
    )
    return list(rows.all())


async def existing_managers(session: AsyncSession, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``ids`` are managers."""
    rows = await session.scalars(
        text("SELECT id FROM managers WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": ids}
    )
    return set(rows.all())


async def tier_codes(session: AsyncSession) -> set[str]:
    """Every tier code."""
    return set((await session.scalars(text("SELECT code FROM tiers"))).all())


async def select_customers(session: AsyncSession, selection: dict[str, Any]) -> list[uuid.UUID]:
    """Active customers by explicit ids or by a filter (region, tier, owner, owner's team),
    matched against their live values."""
    where = ["c.status = 'active'"]
    params: dict[str, Any] = {}
    if selection.get("customer_ids") is not None:
        where.append("c.id = ANY(CAST(:ids AS uuid[]))")
        params["ids"] = [uuid.UUID(str(i)) for i in selection["customer_ids"]]
    found = selection.get("filter") or {}
    for name, column in (("region", "c.region"), ("tier", "c.tier_code")):
        if name in found:
            if found[name] is None:
                where.append(f"{column} IS NULL")
            else:
                where.append(f"{column} = :{name}")
                params[name] = found[name]
    if "manager_id" in found:
        if found["manager_id"] is None:
            where.append("c.manager_id IS NULL")
        else:
            where.append("c.manager_id = :manager_id")
            params["manager_id"] = uuid.UUID(str(found["manager_id"]))
    if "team" in found:
        where.append(
            "c.manager_id IN (SELECT id FROM managers WHERE team IS NOT DISTINCT FROM :team)"
        )
        params["team"] = found["team"]
    sql = f"SELECT c.id FROM customers AS c WHERE {' AND '.join(where)} ORDER BY c.id"
    return list((await session.scalars(text(sql), params)).all())


async def lock_customers(session: AsyncSession, ids: list[uuid.UUID]) -> int:
    """Lock the customers' rows (in id order, as every writer does); how many exist."""
    if not ids:
        return 0
    locked = await session.scalar(
        text(
            "SELECT count(*) FROM (SELECT id FROM customers WHERE id = ANY(CAST(:ids AS uuid[])) "
            "ORDER BY id FOR UPDATE) AS locked"
        ),
        {"ids": ids},
    )
    return int(locked or 0)


async def open_violation_customers(session: AsyncSession) -> list[uuid.UUID]:
    """Customers with an open violation."""
    rows = await session.scalars(
        text("SELECT customer_id FROM ownership_violations WHERE resolved_at IS NULL")
    )
    return list(rows.all())
