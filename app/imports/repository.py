"""SQL for imports and exports: a staging table filled by COPY, set-based checks, one upsert.

Rows are staged in a temporary table (binary COPY, the fastest way into Postgres), checked
there against the database (duplicates in the file, unknown owners, emails taken), then
applied by two statements whatever their number: an INSERT of the new ``external_ref``s and an
UPDATE of the existing ones whose fields differ. Each staged row carries a bit mask of the
fields the file gave, so an update only touches those.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Tier
from app.db.rows import rows_as


@dataclass(frozen=True)
class Resource:
    """How one resource is staged and applied."""

    name: str  # the table
    fields: tuple[tuple[str, str], ...]  # (column, Postgres type) of the upserted fields
    extra: tuple[tuple[str, str], ...] = ()  # staged only (the owner of a customer)

    @property
    def columns(self) -> list[str]:
        """The staging table's columns, in COPY order."""
        return [
            "line",
            "external_ref",
            *(c for c, _ in self.fields),
            *(c for c, _ in self.extra),
            "mask",
        ]

    def bit(self, column: str) -> int:
        """The mask bit of an upserted field."""
        return 1 << [c for c, _ in self.fields].index(column)


CUSTOMERS = Resource(
    "customers",
    fields=(
        ("name", "text"),
        ("tier_code", "text"),
        ("status", "text"),
        ("region", "text"),
        ("language", "text"),
        ("industry", "text"),
        ("annual_value", "numeric(18,2)"),
        ("satisfaction", "numeric(4,2)"),
        ("pinned", "boolean"),
    ),
    extra=(("manager_id", "uuid"), ("manager_external_ref", "text"), ("owner_by_id", "boolean")),
)
MANAGERS = Resource(
    "managers",
    fields=(
        ("name", "text"),
        ("email", "text"),
        ("level", "smallint"),
        ("capacity", "integer"),
        ("status", "text"),
        ("accepting_new", "boolean"),
        ("region", "text"),
        ("languages", "text[]"),
        ("industries", "text[]"),
        ("team", "text"),
    ),
)


def _ident(name: str) -> str:
    assert name.replace("_", "").isalnum(), name  # staging names are generated, never input
    return name


async def create_stage(session: AsyncSession, resource: Resource) -> str:
    """A temporary staging table (and its error table) for one import; returns its name."""
    stage = _ident(f"import_{resource.name}_{uuid.uuid4().hex[:12]}")
    columns = ", ".join(f"{c} {t}" for c, t in (*resource.fields, *resource.extra))
    await session.execute(
        text(
            f"CREATE TEMP TABLE {stage} (line integer NOT NULL, external_ref text NOT NULL, "
            f"{columns}, mask integer NOT NULL) ON COMMIT DROP"
        )
    )
    await session.execute(
        text(
            f"CREATE TEMP TABLE {stage}_errors (line integer NOT NULL, external_ref text, "
            "field text, msg text NOT NULL, type text NOT NULL) ON COMMIT DROP"
        )
    )
    return stage


async def drop_stage(session: AsyncSession, stage: str) -> None:
    """Drop the staging tables now (they would go at commit anyway)."""
    await session.execute(text(f"DROP TABLE IF EXISTS {_ident(stage)}, {stage}_errors"))


# Above this many staged rows, joins of the staging table with the imported table are hash
# joins. Right after an import's INSERT the table's statistics can claim it is (nearly) empty
# (it was vacuumed while empty, then filled in this very transaction), and the planner then
# nests loops over it: tens of thousands of rows took minutes instead of a second.
BULK_ROWS = 1_000


@asynccontextmanager
async def bulk_joins(session: AsyncSession, rows: int) -> AsyncIterator[None]:
    """Within the block, no nested-loop joins when ``rows`` (the staged rows) is large."""
    if rows < BULK_ROWS:
        yield
        return
    await session.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))
    yield  # an error rolls the transaction (and the setting) back
    await session.execute(text("SELECT set_config('enable_nestloop', 'on', true)"))


async def _raw(session: AsyncSession) -> Any:
    """The driver's connection under the session (its transaction is open: the staging
    table was created through the session). Large results read there skip SQLAlchemy's
    per-row processing."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def copy_rows(
    session: AsyncSession, stage: str, resource: Resource, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Append rows to the staging table with binary COPY on the session's own connection."""
    raw = await _raw(session)
    await raw.copy_records_to_table(_ident(stage), records=rows, columns=resource.columns)


async def check_customers(session: AsyncSession, stage: str) -> None:
    """Record row errors found against the database: repeated external_refs, unknown or
    departed owners, ``manager_id`` and ``manager_external_ref`` that disagree."""
    await _check_duplicates(session, stage, "external_ref", "external_ref")
    await session.execute(
        text(
            f"UPDATE {stage} AS s SET manager_id = m.id FROM managers AS m "
            "WHERE s.manager_id IS NULL AND s.manager_external_ref = m.external_ref"
        )
    )
    await session.execute(
        text(
            f"""
            INSERT INTO {stage}_errors (line, external_ref, field, msg, type)
            SELECT s.line, s.external_ref,
                   CASE WHEN s.owner_by_id THEN 'manager_id' ELSE 'manager_external_ref' END,
                   CASE WHEN s.owner_by_id THEN 'unknown manager ' || s.manager_id
                        ELSE 'unknown manager_external_ref ''' || s.manager_external_ref || ''''
                   END,
                   'unknown_manager'
              FROM {stage} AS s
             WHERE (s.owner_by_id OR s.manager_external_ref IS NOT NULL)
               AND NOT EXISTS (SELECT 1 FROM managers AS m WHERE m.id = s.manager_id)
            UNION ALL
            SELECT s.line, s.external_ref, 'manager_external_ref',
                   'manager_external_ref ''' || s.manager_external_ref
                   || ''' is not the manager ' || s.manager_id, 'owner_mismatch'
              FROM {stage} AS s JOIN managers AS m ON m.id = s.manager_id
             WHERE s.owner_by_id AND s.manager_external_ref IS NOT NULL
               AND m.external_ref IS DISTINCT FROM s.manager_external_ref
            UNION ALL
            SELECT s.line, s.external_ref,
                   CASE WHEN s.owner_by_id THEN 'manager_id' ELSE 'manager_external_ref' END,
                   'manager ' || m.id || ' has departed and cannot own customers',
                   'manager_departed'
              FROM {stage} AS s JOIN managers AS m ON m.id = s.manager_id
             WHERE m.status = 'departed'
            """
        )
    )


async def check_managers(session: AsyncSession, stage: str) -> None:
    """Record row errors found against the database: repeated external_refs or emails in the
    file, and emails that belong to another manager."""
    await _check_duplicates(session, stage, "external_ref", "external_ref")
    await _check_duplicates(session, stage, "lower(email)", "email")
    await session.execute(
        text(
            f"""
            INSERT INTO {stage}_errors (line, external_ref, field, msg, type)
            SELECT s.line, s.external_ref, 'email',
                   'email already belongs to manager ' || m.id, 'email_taken'
              FROM {stage} AS s JOIN managers AS m ON lower(m.email) = lower(s.email)
             WHERE m.external_ref IS DISTINCT FROM s.external_ref
            """
        )
    )
    # Leaving is a handover: a manager who still owns active customers cannot be imported
    # as departed (the same rule as PATCH without handover=auto).
    await session.execute(
        text(
            f"""
            INSERT INTO {stage}_errors (line, external_ref, field, msg, type)
            SELECT s.line, s.external_ref, 'status',
                   'the manager still owns ' || count(c.id)
                   || ' active customer(s); start a departure handover first',
                   'manager_owns_customers'
              FROM {stage} AS s
              JOIN managers AS m ON m.external_ref = s.external_ref
              JOIN customers AS c ON c.manager_id = m.id AND c.status = 'active'
             WHERE s.status = 'departed' AND m.status <> 'departed'
             GROUP BY s.line, s.external_ref
            """
        )
    )


async def _check_duplicates(session: AsyncSession, stage: str, key: str, field: str) -> None:
    await session.execute(
        text(
            f"""
            INSERT INTO {stage}_errors (line, external_ref, field, msg, type)
            SELECT line, external_ref, '{field}',
                   '{field} appears again in the file (first at line ' || first || ')',
                   'duplicate'
              FROM (SELECT line, external_ref, min(line) OVER (PARTITION BY {key}) AS first
                      FROM {stage}) AS d
             WHERE line <> first
            """
        )
    )


@dataclass(frozen=True, slots=True)
class StagedError:
    """An error found on a staged row."""

    line: int
    external_ref: str | None
    field: str | None
    msg: str
    type: str


async def error_summary(
    session: AsyncSession, stage: str, *, limit: int
) -> tuple[int, list[StagedError]]:
    """(distinct lines with an error, the first ``limit`` errors by line)."""
    failed = await session.scalar(text(f"SELECT count(DISTINCT line) FROM {stage}_errors"))
    rows = (
        await session.execute(
            text(
                f"SELECT line, external_ref, field, msg, type FROM {stage}_errors "
                "ORDER BY line, field LIMIT :limit"
            ),
            {"limit": limit},
        )
    ).mappings()
    return int(failed or 0), rows_as(StagedError, rows)


async def discard_failed(session: AsyncSession, stage: str) -> None:
    """Drop the staged rows that have an error (best-effort mode)."""
    await session.execute(
        text(f"DELETE FROM {stage} AS s USING {stage}_errors AS e WHERE s.line = e.line")
    )


async def upsert(session: AsyncSession, stage: str, resource: Resource) -> tuple[int, int]:
    """Insert new ``external_ref``s, then update existing records whose given fields differ.

    The INSERT runs first so a record created concurrently by someone else is simply updated
    by the second statement. Returns (created, updated)."""
    table = resource.name
    cols = ", ".join(c for c, _ in resource.fields)
    created = await session.scalar(
        text(
            f"WITH ins AS (INSERT INTO {table} (external_ref, {cols}) "
            f"SELECT external_ref, {cols} FROM {stage} ORDER BY line "
            "ON CONFLICT (external_ref) DO NOTHING RETURNING 1) SELECT count(*) FROM ins"
        )
    )
    return int(created or 0), (await update_changed(session, stage, resource)).count


@dataclass(frozen=True, slots=True)
class Changed:
    """Existing records an import updated: how many, and the ids of those where one of the
    watched fields changed."""

    count: int
    watched_ids: list[uuid.UUID]


async def update_changed(
    session: AsyncSession, stage: str, resource: Resource, *, watch: Sequence[str] = ()
) -> Changed:
    """Update the existing records the staged rows name where a field the file gives
    differs; returns how many changed, and which of them changed a field in ``watch``."""
    table = resource.name
    fields = [c for c, _ in resource.fields]
    given = {
        c: f"CASE WHEN s.mask & {resource.bit(c)} <> 0 THEN s.{c} ELSE x.{c} END" for c in fields
    }
    chosen = ", ".join(f"{given[c]} AS {c}" for c in fields)
    watched = (
        f"ROW({', '.join(f'x.{c}' for c in watch)}) IS DISTINCT FROM "
        f"ROW({', '.join(given[c] for c in watch)})"
        if watch
        else "false"
    )
    assignments = ", ".join(f"{c} = n.{c}" for c in fields)
    current = ", ".join(f"t.{c}" for c in fields)
    new = ", ".join(f"n.{c}" for c in fields)
    row = (
        await session.execute(
            text(
                f"""
                WITH upd AS (
                    UPDATE {table} AS t
                       SET {assignments}, version = t.version + 1, updated_at = now()
                      FROM (SELECT x.id, {chosen}, {watched} AS watched
                              FROM {stage} AS s JOIN {table} AS x ON x.external_ref = s.external_ref
                           ) AS n
                     WHERE t.id = n.id AND ROW({current}) IS DISTINCT FROM ROW({new})
                    RETURNING t.id, n.watched)
                SELECT count(*), array_agg(id) FILTER (WHERE watched) FROM upd
                """
            )
        )
    ).one()
    return Changed(int(row[0] or 0), list(row[1] or []))


# A staged customer's facts as the placement guard reads them (``engine.Customer``'s fields
# after its id), kept with each planned move.
_GUARD_FACTS = (
    ("tier_code", "text"),
    ("region", "text"),
    ("language", "text"),
    ("industry", "text"),
    ("annual_value", "float8"),
    ("satisfaction", "float8"),
    ("pinned", "boolean"),
)


@dataclass(frozen=True, slots=True)
class PlannedOwners:
    """What the staged rows ask of owners before anything is written."""

    moves: int  # rows whose customer gets another owner (new customers included)
    new_rows: int  # staged rows whose external_ref no customer has yet
    existing_rows: int  # staged rows naming a customer that exists


async def plan_owner_moves(session: AsyncSession, stage: str) -> PlannedOwners:
    """Before the upsert: collect the owner each staged row asks for, where it differs from
    the customer's current one, into a numbered table (in file order), with the row's
    customer facts the placement guard reads (so it reads this table alone). A customer the
    file creates gets its id here, so its owner can be written with the row itself."""
    await session.execute(
        text(
            f"CREATE TEMP TABLE {stage}_moves (seq bigint PRIMARY KEY, customer_id uuid NOT NULL, "
            "manager_id uuid NOT NULL, line bigint NOT NULL, external_ref text, "
            "new boolean NOT NULL, allowed boolean NOT NULL DEFAULT true, "
            f"{', '.join(f'{c} {t}' for c, t in _GUARD_FACTS)}) ON COMMIT DROP"
        )
    )
    facts = ", ".join(c for c, _ in _GUARD_FACTS)
    row = (
        await session.execute(
            text(
                f"""
                WITH scan AS MATERIALIZED (
                    SELECT s.line, s.external_ref, s.manager_id, c.id, c.manager_id AS current,
                           {", ".join(f"s.{c}" for c, _ in _GUARD_FACTS)}
                      FROM {stage} AS s LEFT JOIN customers AS c ON c.external_ref = s.external_ref
                ), planned AS (
                    INSERT INTO {stage}_moves
                           (seq, customer_id, manager_id, line, external_ref, new, {facts})
                    SELECT row_number() OVER (ORDER BY line), COALESCE(id, gen_random_uuid()),
                           manager_id, line, external_ref, id IS NULL, {facts}
                      FROM scan
                     WHERE manager_id IS NOT NULL AND current IS DISTINCT FROM manager_id
                    RETURNING 1)
                SELECT (SELECT count(*) FROM planned), (SELECT count(*) FROM scan WHERE id IS NULL),
                       (SELECT count(*) FROM scan WHERE id IS NOT NULL)
                """
            )
        )
    ).one()
    return PlannedOwners(moves=int(row[0]), new_rows=int(row[1]), existing_rows=int(row[2]))


@dataclass(frozen=True, slots=True)
class Inserted:
    """New customers written with their owners (the ids and owners only when asked for)."""

    created: int
    owned: int
    customer_ids: list[uuid.UUID]
    manager_ids: list[uuid.UUID]


async def insert_customers_with_owners(
    session: AsyncSession, stage: str, *, at: datetime, actor: str, returning: bool
) -> Inserted:
    """Insert the staged customers that do not exist yet, each with the owner its allowed
    planned move names, and open their ledger rows (reason ``import``): one statement.

    The moves done stay marked ``new`` (``owner_moves`` leaves them out); a row someone else
    created meanwhile is left to the update, and its move, once adopted, to the ledger's
    ordinary path. ``returning`` gives back
    the owned customers' ids and owners (for outbound events)."""
    cols = ", ".join(c for c, _ in CUSTOMERS.fields)
    picked = ", ".join(f"s.{c}" for c, _ in CUSTOMERS.fields)
    row = (
        await session.execute(
            text(
                f"""
                WITH ins AS (
                    INSERT INTO customers
                           (id, external_ref, {cols}, manager_id, owner_since, updated_at)
                    SELECT COALESCE(mv.customer_id, gen_random_uuid()), s.external_ref, {picked},
                           CASE WHEN mv.allowed THEN mv.manager_id END,
                           CASE WHEN mv.allowed THEN CAST(:at AS timestamptz) END,
                           CASE WHEN mv.allowed THEN CAST(:at AS timestamptz) ELSE now() END
                      FROM {stage} AS s
                      LEFT JOIN {stage}_moves AS mv ON mv.line = s.line AND mv.new
                     ORDER BY s.line
                    ON CONFLICT (external_ref) DO NOTHING
                    RETURNING id, manager_id
                ), ledger AS (
                    INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
                    SELECT id, manager_id, :at, 'import', :actor FROM ins
                     WHERE manager_id IS NOT NULL
                )
                SELECT count(*), count(manager_id),
                       CASE WHEN :returning
                            THEN array_agg(id) FILTER (WHERE manager_id IS NOT NULL) END,
                       CASE WHEN :returning
                            THEN array_agg(manager_id) FILTER (WHERE manager_id IS NOT NULL) END
                  FROM ins
                """
            ),
            {"at": at, "actor": actor, "returning": returning},
        )
    ).one()
    return Inserted(int(row[0]), int(row[1]), list(row[2] or []), list(row[3] or []))


async def adopt_concurrent_creations(session: AsyncSession, stage: str) -> list[uuid.UUID]:
    """Point the planned moves of rows created by someone else between the plan and the
    insert at the customers that now hold their ``external_ref``; returns those customers."""
    adopted = await session.scalars(
        text(
            f"""
            UPDATE {stage}_moves AS mv SET customer_id = c.id, new = false
              FROM customers AS c
             WHERE mv.new AND c.external_ref = mv.external_ref AND c.id <> mv.customer_id
            RETURNING c.id
            """
        )
    )
    return list(adopted.all())


async def owner_moves(
    session: AsyncSession, stage: str, *, batch: int
) -> AsyncIterator[tuple[list[uuid.UUID], list[uuid.UUID | None]]]:
    """The staged owner moves of existing customers (the new ones were inserted with their
    owner) in batches of ``batch`` (customer ids, manager ids)."""
    raw = await _raw(session)
    query = (
        f"SELECT seq, customer_id, manager_id FROM {_ident(stage)}_moves "
        "WHERE seq > $1 AND NOT new ORDER BY seq LIMIT $2"
    )
    after = 0
    while True:
        rows = await raw.fetch(query, after, batch)
        if not rows:
            return
        after = rows[-1][0]
        yield [r[1] for r in rows], [r[2] for r in rows]


@dataclass(frozen=True, slots=True)
class MoveScope:
    """Who the planned owner moves involve: the owners, and the tiers of the customers."""

    manager_ids: list[uuid.UUID]
    tiers: list[str]


async def move_scope(session: AsyncSession, stage: str, *, tiers: bool) -> MoveScope:
    """The distinct owners of the planned moves and, when ``tiers``, their customers' tiers
    (a customer's staged tier is its tier after the import: every customer row gives one)."""
    raw = await _raw(session)
    owners = await raw.fetch(f"SELECT DISTINCT manager_id FROM {_ident(stage)}_moves")
    codes = (
        await raw.fetch(f"SELECT DISTINCT tier_code FROM {_ident(stage)}_moves") if tiers else []
    )
    return MoveScope([r[0] for r in owners], [r[0] for r in codes])


async def staged_moves(
    session: AsyncSession, stage: str, *, batch: int
) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """Every planned owner move, in file order and in batches of ``batch``: (seq, customer
    id, manager id, line, whether the import creates the customer, then its staged tier,
    region, language, industry, annual value and satisfaction as floats, and pinned: the
    facts of a customer not inserted yet; an existing one's are read from the table)."""
    raw = await _raw(session)
    query = (
        f"SELECT seq, customer_id, manager_id, line, new, {', '.join(c for c, _ in _GUARD_FACTS)} "
        f"FROM {_ident(stage)}_moves WHERE seq > $1 ORDER BY seq LIMIT $2"
    )
    after = 0
    while True:
        rows = await raw.fetch(query, after, batch)
        if not rows:
            return
        after = rows[-1][0]
        yield rows


async def refs_of_lines(session: AsyncSession, stage: str, lines: list[int]) -> dict[int, str]:
    """The ``external_ref`` of these staged lines."""
    rows = await (await _raw(session)).fetch(
        f"SELECT line, external_ref FROM {_ident(stage)} WHERE line = ANY($1::int[])", lines
    )
    return {r[0]: r[1] for r in rows}


async def drop_staged_moves(session: AsyncSession, stage: str, seqs: list[int]) -> None:
    """Leave these owner moves out (refused by the placement guard, best-effort mode)."""
    await session.execute(
        text(f"DELETE FROM {stage}_moves WHERE seq = ANY(CAST(:seqs AS bigint[]))"),
        {"seqs": seqs},
    )


async def disallow_staged_moves(session: AsyncSession, stage: str, seqs: list[int]) -> None:
    """Keep these owner moves from the insert of new customers (refused by the placement
    guard, or forced past it: a forced move is made on its own, with its note)."""
    if seqs:
        await session.execute(
            text(
                f"UPDATE {stage}_moves SET allowed = false WHERE seq = ANY(CAST(:seqs AS bigint[]))"
            ),
            {"seqs": seqs},
        )


async def lock_moved_customers(session: AsyncSession, stage: str) -> None:
    """Lock the existing customers the file gives an owner, in id order, before new customers
    are inserted with theirs: inserting key-share-locks those owners, and a manual assignment
    that holds one of these customers and waits for such an owner would otherwise deadlock
    with the import (customers before managers, as every writer of owners locks them)."""
    await session.execute(
        text(
            f"""
            SELECT FROM customers
             WHERE id IN (SELECT customer_id FROM {stage}_moves WHERE NOT new)
             ORDER BY id FOR UPDATE
            """
        )
    )


async def moved_customer_ids(
    session: AsyncSession, stage: str, seqs: list[int]
) -> dict[int, uuid.UUID]:
    """The customer each of these planned moves names now."""
    rows = await (await _raw(session)).fetch(
        f"SELECT seq, customer_id FROM {_ident(stage)}_moves WHERE seq = ANY($1::bigint[])", seqs
    )
    return {r[0]: r[1] for r in rows}


async def imported_ids(session: AsyncSession, stage: str, resource: Resource) -> list[uuid.UUID]:
    """The ids of the records the staged rows name (after the upsert)."""
    table = resource.name
    rows = await (await _raw(session)).fetch(
        f"SELECT t.id FROM {_ident(stage)} AS s JOIN {table} AS t "
        "ON t.external_ref = s.external_ref"
    )
    return [r[0] for r in rows]


async def drop_moves(session: AsyncSession, stage: str) -> None:
    """Drop the owner-move table."""
    await session.execute(text(f"DROP TABLE IF EXISTS {_ident(stage)}_moves"))


async def tier_codes(session: AsyncSession) -> frozenset[str]:
    """Every tier's code."""
    return frozenset((await session.scalars(select(Tier.code))).all())
