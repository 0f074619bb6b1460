"""SQL for managers, including their computed workload."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    Float,
    RowMapping,
    Select,
    SQLColumnExpression,
    Text,
    Uuid,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.models import Assignment, Customer, Manager, ManagerLoad, Tier
from app.db.reads import Reader, compile_sql
from app.db.rows import row_as, rows_as
from app.vocabulary import ManagerStatus


def _select_with_load() -> Select[Any]:
    load = (
        select(
            func.coalesce(func.sum(ManagerLoad.customers * Tier.weight), literal_column("0")).label(
                "workload"
            ),
            func.coalesce(func.sum(ManagerLoad.customers), literal_column("0")).label(
                "customer_count"
            ),
        )
        .select_from(ManagerLoad)
        .join(Tier, Tier.code == ManagerLoad.tier_code)
        .where(ManagerLoad.manager_id == Manager.id)
        .correlate(Manager)
        .lateral("load")
    )
    return select(*Manager.__table__.c, load.c.workload, load.c.customer_count).join(load, true())


_BY_ID = compile_sql(_select_with_load().where(Manager.id == bindparam("id", type_=Uuid)), "id")


_BY_REF = compile_sql(
    _select_with_load().where(Manager.external_ref == bindparam("ref", type_=Text)), "ref"
)


async def read_by_ref(reader: Reader, external_ref: str) -> asyncpg.Record | None:
    """The manager with this CRM id, with workload, outside any transaction."""
    return await reader.fetchrow(_BY_REF, external_ref)


async def read(reader: Reader, manager_id: uuid.UUID) -> asyncpg.Record | None:
    """One manager with workload and customer count, outside any transaction (the GET route)."""
    return await reader.fetchrow(_BY_ID, manager_id)


@dataclass(frozen=True, slots=True)
class ManagerRow:
    """A manager as stored."""

    id: uuid.UUID
    external_ref: str | None
    name: str
    email: str
    level: int
    capacity: int
    status: ManagerStatus
    accepting_new: bool
    region: str | None
    languages: list[str]
    industries: list[str]
    team: str | None
    max_new_per_day: int | None
    max_new_per_week: int | None
    rotation_weight: int
    time_zone: str | None
    working_hours: list[dict[str, object]] | None
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class ManagerLoadRow(ManagerRow):
    """A manager with the sum of its active customers' tier weights and their number."""

    workload: int
    customer_count: int


async def get(session: AsyncSession, manager_id: uuid.UUID) -> ManagerLoadRow | None:
    """One manager with workload and customer count."""
    stmt = _select_with_load().where(Manager.id == manager_id)
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else row_as(ManagerLoadRow, row)


async def lock(session: AsyncSession, manager_id: uuid.UUID) -> ManagerRow | None:
    """Lock the manager row for the transaction (serialises capacity checks) and return it."""
    stmt = select(*Manager.__table__.c).where(Manager.id == manager_id).with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else row_as(ManagerRow, row)


async def workload(session: AsyncSession, manager_id: uuid.UUID) -> int:
    """The sum of tier weights of the manager's active customers."""
    stmt = (
        select(func.coalesce(func.sum(ManagerLoad.customers * Tier.weight), 0))
        .join(Tier, Tier.code == ManagerLoad.tier_code)
        .where(ManagerLoad.manager_id == manager_id)
    )
    return int(await session.scalar(stmt) or 0)


# Folds of the load journal run one at a time (a worker's tick and the minute sweep, any number
# of workers): two DELETEs of the same rows would wait on each other, in whatever order each
# plan visits them.
_FOLD_LOCK = 0x6C6F_6164_73

# The rows of the pairs in ``crowded`` (a CTE before it) replaced by one row per pair with
# their sum (none when it is 0), in one statement with it: ``folded`` are the rows removed.
_FOLD_CROWDED = """folded AS (
        DELETE FROM manager_loads AS l USING crowded AS c
         WHERE l.manager_id = c.manager_id AND l.tier_code = c.tier_code
        RETURNING l.manager_id, l.tier_code, l.customers
    ), kept AS (
        INSERT INTO manager_loads (manager_id, tier_code, customers)
        SELECT manager_id, tier_code, sum(customers) FROM folded
         GROUP BY manager_id, tier_code HAVING sum(customers) <> 0
    )"""

# Every (manager, tier) pair with more than one row, folded into one; a pair already folded is
# not rewritten. Waits for a fold running (a worker's tick).
_FOLD_LOADS = text(
    f"""
    WITH one_at_a_time AS MATERIALIZED (SELECT pg_advisory_xact_lock({_FOLD_LOCK})),
    crowded AS MATERIALIZED (
        SELECT manager_id, tier_code FROM manager_loads
         WHERE EXISTS (SELECT FROM one_at_a_time)
         GROUP BY manager_id, tier_code HAVING count(*) > 1
    ), {_FOLD_CROWDED}
    SELECT count(*) FROM folded
    """
)


async def fold_loads(session: AsyncSession) -> int:
    """Fold the workload changes the triggers appended into one row per (manager, tier):
    the pairs with more than one row (a pair of one row is already folded and stays as it is,
    so a quiet journal is not rewritten every minute).

    One statement: a reader sees the rows before or after, never half. Rows appended by
    transactions still open are not visible to the DELETE, so they stay, and count, as they are.
    Returns the number of rows folded away into their pairs' sums.
    """
    return int((await session.execute(_FOLD_LOADS)).scalar_one())


# The (manager, tier) pairs with rows appended after ``after`` (the journal's id) and more than
# one row, folded; the others are not rewritten. Skipped, answering NULL, while another fold
# runs. ``last`` is the newest id this fold saw: the next one starts there (and reads the rows
# this one wrote, one per pair, without rewriting them). A mark beyond the journal's sequence
# (a database restored or emptied under a running worker) starts again from 0.
_FOLD_RECENT_LOADS = text(
    f"""
    WITH turn AS MATERIALIZED (SELECT pg_try_advisory_xact_lock({_FOLD_LOCK}) AS taken),
    since AS MATERIALIZED (
        SELECT CASE WHEN CAST(:after AS bigint) > COALESCE(pg_sequence_last_value(
                             pg_get_serial_sequence('manager_loads', 'id')), 0)
                    THEN 0 ELSE CAST(:after AS bigint) END AS after
    ), recent AS MATERIALIZED (
        SELECT manager_id, tier_code, max(id) AS last FROM manager_loads
         WHERE id > (SELECT after FROM since) AND (SELECT taken FROM turn)
         GROUP BY manager_id, tier_code
    ), crowded AS MATERIALIZED (
        SELECT r.manager_id, r.tier_code FROM recent AS r
         WHERE (SELECT count(*) FROM manager_loads AS l
                 WHERE l.manager_id = r.manager_id AND l.tier_code = r.tier_code) > 1
    ), {_FOLD_CROWDED}
    SELECT CASE WHEN (SELECT taken FROM turn) THEN
               greatest((SELECT after FROM since), (SELECT max(last) FROM recent))
           END AS last,
           (SELECT count(*) FROM folded) AS folded
    """
)


async def fold_recent_loads(session: AsyncSession, *, after: int) -> tuple[int, int] | None:
    """Fold the journal's (manager, tier) pairs that gained rows since id ``after`` and have
    more than one: what a worker's tick does, so that workload reads (every placement's and
    every manual move's) stay one row per pair under a stream of moves, between the minute
    sweep's folds. A row committed late with an id below ``after`` waits for the next minute
    fold (it counts meanwhile, as every journal row does). Returns the id to start from next
    time and how many rows were folded, or None when another fold is running (nothing done).
    """
    row = (await session.execute(_FOLD_RECENT_LOADS, {"after": after})).one()
    return None if row.last is None else (int(row.last), int(row.folded))


def _sort_key(stmt: Select[Any], sort: str) -> SQLColumnExpression[Any]:
    """A non-null sort expression (keyset comparisons never meet NULL): the name, or the
    utilization with managers of no capacity (utilization null) first, as -1."""
    if sort == "name":
        return Manager.name
    workload = stmt.selected_columns["workload"]
    return case(
        (Manager.capacity > 0, cast(workload, Float) / Manager.capacity),
        else_=literal_column("-1.0"),
    )


async def list_page(
    session: AsyncSession,
    *,
    filters: list[ColumnElement[bool]],
    after: uuid.UUID | None,
    limit: int,
    sort: str | None = None,
    descending: bool = False,
    after_key: Any = None,
) -> list[RowMapping]:
    """Managers ordered by id after the given one, with their loads; or by ``sort`` (``name``,
    ``utilization``; each row then carries its ``sort_key``) then id, after ``(after_key,
    after)``."""
    stmt = _select_with_load().where(*filters).limit(limit)
    if sort is None:
        stmt = stmt.order_by(Manager.id)
        if after is not None:
            stmt = stmt.where(Manager.id > after)
        return list((await session.execute(stmt)).mappings())
    key = _sort_key(stmt, sort)
    stmt = stmt.add_columns(key.label("sort_key")).order_by(
        *((key.desc(), Manager.id.desc()) if descending else (key, Manager.id))
    )
    if after is not None:
        row, bound = tuple_(key, Manager.id), tuple_(literal(after_key), literal(after))
        stmt = stmt.where(row < bound if descending else row > bound)
    return list((await session.execute(stmt)).mappings())


async def find_conflict(
    session: AsyncSession, *, email: str | None, external_ref: str | None, exclude: uuid.UUID | None
) -> str | None:
    """Which unique field (email or external_ref) another manager already uses, if any."""
    checks: list[tuple[str, ColumnElement[bool]]] = []
    if email is not None:
        checks.append(("email", func.lower(Manager.email) == email.lower()))
    if external_ref is not None:
        checks.append(("external_ref", Manager.external_ref == external_ref))
    for field, cond in checks:
        stmt = select(Manager.id).where(cond)
        if exclude is not None:
            stmt = stmt.where(Manager.id != exclude)
        if (await session.execute(stmt.limit(1))).first() is not None:
            return field
    return None


async def insert(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID:
    """Add a manager and return the new id."""
    manager = Manager(**values)
    session.add(manager)
    await session.flush()
    return manager.id


async def update_fields(
    session: AsyncSession, manager_id: uuid.UUID, values: dict[str, Any]
) -> bool:
    """Change some fields and bump the version; False when the manager does not exist."""
    result = await session.execute(
        update(Manager)
        .where(Manager.id == manager_id)
        .values(**values, version=Manager.version + 1, updated_at=func.now())
        .returning(Manager.id)
    )
    return result.first() is not None


async def delete(session: AsyncSession, manager_id: uuid.UUID) -> None:
    """Remove a manager row."""
    obj = await session.get(Manager, manager_id)
    if obj is not None:
        await session.delete(obj)
        await session.flush()


# One statement for many managers: per field, a flag saying whether it changes and the value.
# Skill lists travel as JSON text (a 2-d array cannot hold lists of different lengths).
_UPDATE_MANY = text(
    """
    UPDATE managers AS m
       SET team = CASE WHEN u.set_team THEN u.team ELSE m.team END,
           region = CASE WHEN u.set_region THEN u.region ELSE m.region END,
           level = COALESCE(u.level, m.level),
           capacity = COALESCE(u.capacity, m.capacity),
           status = COALESCE(u.status, m.status),
           accepting_new = COALESCE(u.accepting_new, m.accepting_new),
           languages = CASE WHEN u.languages IS NULL THEN m.languages ELSE
                       ARRAY(SELECT jsonb_array_elements_text(CAST(u.languages AS jsonb))) END,
           industries = CASE WHEN u.industries IS NULL THEN m.industries ELSE
                        ARRAY(SELECT jsonb_array_elements_text(CAST(u.industries AS jsonb))) END,
           version = m.version + 1, updated_at = now()
      FROM unnest(CAST(:ids AS uuid[]), CAST(:set_team AS bool[]), CAST(:team AS text[]),
                  CAST(:set_region AS bool[]), CAST(:region AS text[]),
                  CAST(:level AS int2[]), CAST(:capacity AS int4[]), CAST(:status AS text[]),
                  CAST(:accepting_new AS bool[]), CAST(:languages AS text[]),
                  CAST(:industries AS text[]))
           AS u(id, set_team, team, set_region, region, level, capacity, status, accepting_new,
                languages, industries)
     WHERE m.id = u.id
    RETURNING m.id
    """
)


async def update_many(
    session: AsyncSession, changes: list[tuple[uuid.UUID, dict[str, Any]]]
) -> int:
    """Change fields of many managers in one statement (each its own fields); returns how
    many rows changed. Fields: team, region, level, capacity, status, accepting_new,
    languages, industries."""
    if not changes:
        return 0

    def column(name: str) -> list[Any]:
        return [values.get(name) for _, values in changes]

    def listed(name: str) -> list[str | None]:
        return [json.dumps(v) if v is not None else None for v in column(name)]

    result = await session.execute(
        _UPDATE_MANY,
        {
            "ids": [manager_id for manager_id, _ in changes],
            "set_team": ["team" in values for _, values in changes],
            "team": column("team"),
            "set_region": ["region" in values for _, values in changes],
            "region": column("region"),
            "level": column("level"),
            "capacity": column("capacity"),
            "status": column("status"),
            "accepting_new": column("accepting_new"),
            "languages": listed("languages"),
            "industries": listed("industries"),
        },
    )
    return len(result.all())


async def set_status(session: AsyncSession, manager_id: uuid.UUID, status: str) -> str | None:
    """Change a manager's status; the status it had when it changed, None when it already was
    ``status`` (or the manager does not exist)."""
    before = aliased(Manager)
    return await session.scalar(
        update(Manager)
        .where(Manager.id == manager_id, before.id == Manager.id, Manager.status != status)
        .values(status=status, version=Manager.version + 1, updated_at=func.now())
        .returning(before.status)
    )


async def owns_customers(session: AsyncSession, manager_id: uuid.UUID) -> bool:
    """Whether any customer (active or churned) still has the manager as owner."""
    return bool(await session.scalar(select(exists().where(Customer.manager_id == manager_id))))


async def has_history(session: AsyncSession, manager_id: uuid.UUID) -> bool:
    """Whether the manager appears in the ownership ledger."""
    return bool(await session.scalar(select(exists().where(Assignment.manager_id == manager_id))))


@dataclass(frozen=True, slots=True)
class WorkingHoursRow:
    """A manager's working hours and the time zone they are read in."""

    id: uuid.UUID
    time_zone: str | None
    working_hours: list[dict[str, object]]


_WITH_HOURS = text(
    "SELECT id, time_zone, working_hours FROM managers "
    "WHERE working_hours IS NOT NULL AND status <> 'departed'"
)


async def working_hours(session: AsyncSession) -> list[WorkingHoursRow]:
    """The managers (not departed) who keep working hours."""
    return rows_as(WorkingHoursRow, (await session.execute(_WITH_HOURS)).mappings())
