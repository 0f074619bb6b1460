"""SQL for customers."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Numeric,
    SQLColumnExpression,
    Text,
    Uuid,
    bindparam,
    exists,
    func,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Assignment, Customer, Tier
from app.db.reads import Reader, compile_sql, compile_statement
from app.db.rows import row_as
from app.db.session import GENERIC_PLANS, cached_plans, transaction_connection
from app.vocabulary import CustomerStatus

_columns = (
    *(c for c in Customer.__table__.c if c.key != "tier_code"),
    Customer.tier_code.label("tier"),
)
_BY_ID = compile_sql(select(*_columns).where(Customer.id == bindparam("id")), "id")
_BY_REF = compile_sql(
    select(*_columns).where(Customer.external_ref == bindparam("ref", type_=Text)), "ref"
)


async def read(reader: Reader, customer_id: uuid.UUID) -> asyncpg.Record | None:
    """One customer, outside any transaction (the GET route)."""
    return await reader.fetchrow(_BY_ID, customer_id)


async def read_by_ref(reader: Reader, external_ref: str) -> asyncpg.Record | None:
    """The customer with this CRM id, outside any transaction."""
    return await reader.fetchrow(_BY_REF, external_ref)


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """A stored customer (``tier`` is its tier's code)."""

    id: uuid.UUID
    external_ref: str | None
    name: str
    tier: str
    status: CustomerStatus
    region: str | None
    language: str | None
    industry: str | None
    annual_value: Decimal | None
    satisfaction: Decimal | None
    manager_id: uuid.UUID | None
    pinned: bool
    owner_since: datetime | None
    churned_at: datetime | None
    last_activity_at: datetime | None
    reclaim_warned_at: datetime | None
    first_touch_missed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


_BY_ID_LOCKED = f"{_BY_ID} FOR UPDATE"


async def get(
    session: AsyncSession, customer_id: uuid.UUID, *, lock: bool = False
) -> CustomerRow | None:
    """One customer in the session's transaction; ``lock`` takes its row lock for the
    transaction. On the driver's connection: every change of a customer (a manual assignment
    first of all) starts here and ends reading the result."""
    connection = await transaction_connection(session)
    row = await connection.fetchrow(_BY_ID_LOCKED if lock else _BY_ID, customer_id)
    return None if row is None else row_as(CustomerRow, dict(row))


# A manual move's locks in one round trip: the customer's row (returned whole), then the new
# owner's, in that order (every writer locks customers before managers: the manager's lock is
# a subquery of the locked customer's row, so it runs once that row is locked), with the JSON
# text of the rule set in force, as ``loading.lock_manager_for_move`` reads it.
_LOCK_FOR_MOVE = f"""
    SELECT c.*,
           (SELECT m.id FROM managers AS m WHERE m.id = $2 AND c.id IS NOT NULL FOR UPDATE)
               AS manager_locked,
           r.rules_json, r.rules_version, {GENERIC_PLANS.format(3)} AS generic_plans
      FROM ({_BY_ID_LOCKED}) AS c
      LEFT JOIN LATERAL (
            SELECT CAST(rules AS text) AS rules_json, version AS rules_version
              FROM rule_sets ORDER BY version DESC LIMIT 1) AS r ON true
"""


async def lock_for_move(
    session: AsyncSession, customer_id: uuid.UUID, manager_id: uuid.UUID
) -> tuple[CustomerRow, str | None, int] | None:
    """Lock a customer, then the manager it is to be given to (if that manager exists), in
    one statement; returns the customer, the JSON text of the rule set in force (None: the
    built-in default) and its version (0: none stored), or None when there is no such
    customer (nothing is locked then)."""
    connection = await transaction_connection(session)
    row = await connection.fetchrow(_LOCK_FOR_MOVE, customer_id, manager_id, cached_plans(session))
    if row is None:
        return None
    columns = dict(row)
    del columns["manager_locked"], columns["generic_plans"]
    rules_json: str | None = columns.pop("rules_json")
    rules_version: int = columns.pop("rules_version") or 0
    return row_as(CustomerRow, columns), rules_json, rules_version


# A page's filters, each a clause on a bind parameter of the same name (``pool`` and
# ``owned`` take none); every combination is compiled once, on first use.
_PAGE_FILTERS: dict[str, ColumnElement[bool]] = {
    "tier": Customer.tier_code == bindparam("tier", type_=Text),
    "status": Customer.status == bindparam("status", type_=Text),
    "region": Customer.region == bindparam("region", type_=Text),
    "manager_id": Customer.manager_id == bindparam("manager_id", type_=Uuid),
    "pool": Customer.manager_id.is_(None),
    "owned": Customer.manager_id.is_not(None),
    "q": Customer.name.ilike(bindparam("q", type_=Text), escape="/"),
    "after": Customer.id > bindparam("after", type_=Uuid),
}


# The orders a page can be sorted in: each a non-null expression (so a keyset comparison
# never meets NULL), with the id as tie-breaker. An unknown annual value sorts as -1, first.
SORT_KEYS: dict[str, SQLColumnExpression[Any]] = {
    "name": Customer.name,
    "tier": select(Tier.rank).where(Tier.code == Customer.tier_code).scalar_subquery(),
    "annual_value": func.coalesce(Customer.annual_value, literal_column("-1")),
    "updated_at": Customer.updated_at,
}
_SORT_TYPES: dict[str, Any] = {
    "name": Text,
    "tier": Integer,
    "annual_value": Numeric,
    "updated_at": DateTime(timezone=True),
}


@functools.cache
def _page_statement(
    names: frozenset[str], sort: str | None = None, descending: bool = False
) -> tuple[str, tuple[str, ...]]:
    if sort is None:
        stmt = select(*_columns).order_by(Customer.id)
    else:
        key = SORT_KEYS[sort]
        stmt = select(*_columns, key.label("sort_key")).order_by(
            *((key.desc(), Customer.id.desc()) if descending else (key, Customer.id))
        )
        if "after" in names:
            row = tuple_(key, Customer.id)
            bound = tuple_(
                bindparam("after_key", type_=_SORT_TYPES[sort]), bindparam("after", type_=Uuid)
            )
            stmt = stmt.where(row < bound if descending else row > bound)
            names = names - {"after"}
    stmt = stmt.where(*(_PAGE_FILTERS[n] for n in sorted(names))).limit(
        bindparam("limit", type_=Integer)
    )
    return compile_statement(stmt)


def contains_pattern(text: str) -> str:
    """An ILIKE pattern (escape ``/``) matching names that contain ``text`` literally."""
    escaped = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


async def read_page(
    reader: Reader,
    *,
    filters: dict[str, Any],
    limit: int,
    sort: str | None = None,
    descending: bool = False,
) -> list[asyncpg.Record]:
    """Customers ordered by id, or by ``sort`` (a key of ``SORT_KEYS``; each row then carries
    its ``sort_key``) then id, outside any transaction: ``filters`` maps names of
    ``_PAGE_FILTERS`` to their values (None for ``pool``/``owned``); ``after`` is the cursor's
    id, and ``after_key`` its sort key when sorted."""
    names = frozenset(filters) - {"after_key"}
    sql, params = _page_statement(names, sort, descending)
    values = {**filters, "limit": limit}
    return await reader.fetch(sql, *(values[name] for name in params))


async def external_ref_taken(
    session: AsyncSession, external_ref: str, *, exclude: uuid.UUID | None
) -> bool:
    """Whether another customer already uses this external_ref."""
    stmt = select(Customer.id).where(Customer.external_ref == external_ref)
    if exclude is not None:
        stmt = stmt.where(Customer.id != exclude)
    return (await session.execute(stmt.limit(1))).first() is not None


async def insert(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID:
    """Add a customer (in the pool) and return its id."""
    customer = Customer(**values)
    session.add(customer)
    await session.flush()
    return customer.id


async def update_fields(
    session: AsyncSession, customer_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Change some fields and bump the version."""
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(**values, version=Customer.version + 1, updated_at=func.now())
    )


async def delete(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """Remove a customer row."""
    obj = await session.get(Customer, customer_id)
    if obj is not None:
        await session.delete(obj)
        await session.flush()


_SET_MANY = """
    tier_code = CASE WHEN :set_tier THEN CAST(:tier AS text) ELSE c.tier_code END,
    region = CASE WHEN :set_region THEN CAST(:region AS text) ELSE c.region END,
    pinned = CASE WHEN :set_pinned THEN CAST(:pinned AS bool) ELSE c.pinned END,
    version = c.version + 1, updated_at = now()
"""
# A new tier is announced with the old one: read it first (the caller holds the row locks).
_UPDATE_MANY_TIERS = text(
    f"""
    WITH old AS MATERIALIZED (
        SELECT c.id, c.tier_code FROM customers AS c WHERE c.id = ANY(CAST(:ids AS uuid[]))
    ), changed AS (
        UPDATE customers AS c SET {_SET_MANY}
          FROM old
         WHERE c.id = old.id
        RETURNING c.id, old.tier_code AS old_tier, c.tier_code AS tier, c.manager_id
    )
    SELECT array_agg(id), array_agg(old_tier), array_agg(tier), array_agg(manager_id)
      FROM changed
    """
)
_UPDATE_MANY = text(
    f"""
    WITH changed AS (
        UPDATE customers AS c SET {_SET_MANY}
         WHERE c.id = ANY(CAST(:ids AS uuid[]))
        RETURNING 1
    )
    SELECT count(*) FROM changed
    """
)


async def update_many(
    session: AsyncSession, ids: list[uuid.UUID], values: dict[str, Any]
) -> tuple[int, list[tuple[uuid.UUID, str, str, uuid.UUID | None]]]:
    """Set the same ``tier`` / ``region`` / ``pinned`` on many customers in one statement;
    returns how many changed and, when the tier is set, (id, old tier, tier, owner) per
    customer."""
    params = {
        "ids": ids,
        "set_tier": "tier" in values,
        "tier": values.get("tier"),
        "set_region": "region" in values,
        "region": values.get("region"),
        "set_pinned": "pinned" in values,
        "pinned": values.get("pinned"),
    }
    if "tier" not in values:
        return int((await session.execute(_UPDATE_MANY, params)).scalar_one()), []
    row = (await session.execute(_UPDATE_MANY_TIERS, params)).one()
    changed = list(zip(row[0] or [], row[1] or [], row[2] or [], row[3] or [], strict=True))
    return len(changed), changed


async def tier_weight(session: AsyncSession, code: str) -> int | None:
    """The tier's weight, or None when there is no such tier."""
    return await session.scalar(select(Tier.weight).where(Tier.code == code))


async def has_history(session: AsyncSession, customer_id: uuid.UUID) -> bool:
    """Whether the customer appears in the ownership ledger."""
    return bool(await session.scalar(select(exists().where(Assignment.customer_id == customer_id))))
