"""Benchmark: writing a plan (moves + ledger) and loading customers for the engine, each
against the raw set-based floor measured in the same run. The write floor is three bare
statements over arrays (update owners, close the open ledger rows, insert the new ones): the
least any writer can do while the ledger holds one open row per customer.

    python -m bench.apply                # 100k moves, 1M-customer load
    python -m bench.apply --quick        # 10k moves, 100k-customer load
    python -m bench.apply --load-only    # the load alone, at 100k and 1M customers
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import columnar, loading
from app.assignments.repository import move_customers
from app.db.session import driver_connection
from bench._db import scratch_database

FLOOR_UPDATE = """
UPDATE customers AS c SET manager_id = i.m FROM unnest($1::uuid[], $2::uuid[]) AS i(id, m)
 WHERE c.id = i.id
"""
FLOOR_CLOSE = """
UPDATE assignments AS a SET ended_at = now() FROM unnest($1::uuid[]) AS i(id)
 WHERE a.customer_id = i.id AND a.ended_at IS NULL
"""
FLOOR_INSERT = """
INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
SELECT i.id, i.m, now(), 'auto', 'bench' FROM unnest($1::uuid[], $2::uuid[]) AS i(id, m)
"""
FLOOR_COPY = (
    "SELECT c.id, t.rank, c.manager_id FROM customers AS c JOIN tiers AS t ON t.code = c.tier_code"
    " WHERE c.status = 'active'"
)

# The columns the engine reads, as stored (text, numeric, timestamptz), in one binary COPY
# with nothing parsed: what any loader of the same facts has to move.
ENGINE_COLUMNS_COPY = (
    "SELECT c.id, c.tier_code, c.region, c.language, c.industry, c.pinned, c.manager_id, "
    "c.owner_since, c.annual_value, c.satisfaction FROM customers AS c "
    "WHERE c.status = 'active' AND c.manager_id IS NOT NULL"
)


async def time_engine_columns_floor(engine, *, in_loop: bool = False) -> float:
    """The COPY floor, into a BytesIO (asyncpg writes each chunk in a worker thread) or,
    ``in_loop``, gathered on the event loop as the loader gathers it."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        buffer = bytearray()

        async def receive(chunk: bytes) -> None:
            buffer.extend(chunk)

        output = receive if in_loop else io.BytesIO()
        started = time.perf_counter()
        await raw.copy_from_query(ENGINE_COLUMNS_COPY, output=output, format="binary")
        return time.perf_counter() - started


# The same rows in tables with no index but what the three statements look up by, no
# trigger and no foreign key: what the statements cost before the schema's own write work.
BARE_TABLES = """
CREATE TABLE bare_customers (LIKE customers INCLUDING DEFAULTS);
INSERT INTO bare_customers SELECT * FROM customers;
ALTER TABLE bare_customers ADD PRIMARY KEY (id);
CREATE TABLE bare_assignments (LIKE assignments INCLUDING DEFAULTS);
INSERT INTO bare_assignments SELECT * FROM assignments;
CREATE INDEX ON bare_assignments (customer_id) WHERE ended_at IS NULL;
ANALYZE bare_customers;
ANALYZE bare_assignments
"""


# What earlier schemas had and today's does not, rebuilt inside the timed transaction (and
# rolled back with it): the index of open ledger rows by manager (dropped by migration 0016)
# and the per-row foreign keys of the owners and the ledger (statement-level checks since
# 0017; NOT VALID skips re-checking the existing rows, the per-row checks run the same).
BEFORE_0016 = (
    "CREATE INDEX bench_assignments_manager_open ON assignments (manager_id)"
    " WHERE ended_at IS NULL",
)
BEFORE_0017 = (
    "ALTER TABLE customers DISABLE TRIGGER customers_references_update",
    "ALTER TABLE customers DISABLE TRIGGER customers_references_insert",
    "ALTER TABLE assignments DISABLE TRIGGER assignments_references_insert",
    "ALTER TABLE customers ADD CONSTRAINT bench_fk_customers_manager FOREIGN KEY (manager_id)"
    " REFERENCES managers (id) ON DELETE RESTRICT NOT VALID",
    "ALTER TABLE assignments ADD CONSTRAINT bench_fk_assignments_customer"
    " FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE RESTRICT NOT VALID",
    "ALTER TABLE assignments ADD CONSTRAINT bench_fk_assignments_manager"
    " FOREIGN KEY (manager_id) REFERENCES managers (id) ON DELETE RESTRICT NOT VALID",
)


# The ledger before migration 0018: the partial unique index of open periods (which made every
# close a non-HOT update), full pages, and 0017's reference check without the open-period count.
# Both this and today's ledger are rewritten in the timed transaction (untimed), so that they
# differ by the schema alone, not by how their pages happen to be filled.
def _migration(revision: str) -> ModuleType:
    """A migration module by its revision id (their file names are not importable names)."""
    (path,) = (Path(__file__).parents[1] / "migrations" / "versions").glob(f"*_{revision}_*.py")
    spec = importlib.util.spec_from_file_location(f"migration_{revision}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# What migration 0018's downgrade restores: 0017's check, without the open-period count.
CHECK_0017: str = _migration("0018")._ASSIGNMENTS_0017
REWRITE = (
    "CLUSTER assignments USING pk_assignments",
    "ANALYZE assignments",
    "SELECT count(*), max(started_at) FROM assignments",
)
TODAY_REWRITTEN = REWRITE
BEFORE_0018 = (
    "CREATE UNIQUE INDEX uq_assignments_open_per_customer ON assignments (customer_id)"
    " WHERE ended_at IS NULL",
    "ALTER TABLE assignments SET (fillfactor = 100)",
    CHECK_0017,
    *REWRITE,
)


async def _moves(engine, n):
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        rows = await raw.fetch("SELECT id, manager_id FROM customers ORDER BY id LIMIT $1", n)
        managers = [r["id"] for r in await raw.fetch("SELECT id FROM managers ORDER BY id")]
    index = {m: i for i, m in enumerate(managers)}
    ids = [r["id"] for r in rows]
    targets = [managers[(index[r["manager_id"]] + 1) % len(managers)] for r in rows]
    return ids, targets


async def time_statements(
    engine,
    ids,
    targets,
    *,
    bare: bool = False,
    no_triggers: bool = False,
    schema: tuple[str, ...] = (),
) -> list[float]:
    """Each of the three statements' time on the real schema, or (``bare``) on the bare tables;
    ``no_triggers`` runs them with triggers and foreign-key checks off (a superuser's
    ``session_replication_role = replica``), to show what those cost; ``schema`` changes the
    schema first, in the same rolled-back transaction (an earlier schema, untimed)."""
    update, close, insert = FLOOR_UPDATE, FLOOR_CLOSE, FLOOR_INSERT
    if bare:
        update = update.replace("UPDATE customers", "UPDATE bare_customers")
        close = close.replace("UPDATE assignments", "UPDATE bare_assignments")
        insert = insert.replace("INTO assignments", "INTO bare_assignments")
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        tx = raw.transaction()
        await tx.start()
        if no_triggers:
            await raw.execute("SET LOCAL session_replication_role = replica")
        for statement in schema:
            await raw.execute(statement)
        times = []
        for statement, params in (
            (update, (ids, targets)),
            (close, (ids,)),
            (insert, (ids, targets)),
        ):
            started = time.perf_counter()
            await raw.execute(statement, *params)
            times.append(time.perf_counter() - started)
        await tx.rollback()
    return times


async def time_floor(engine, ids, targets, *, bare: bool = False) -> float:
    """The three statements on the real schema, or (``bare``) on the bare tables."""
    return sum(await time_statements(engine, ids, targets, bare=bare))


# Where the floor's time goes: with triggers and foreign-key checks off, with only the unique
# indexes (the lookups the statements make), and with both.
async def breakdown(engine, ids, targets, repeat: int) -> None:
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        if not await raw.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            print("breakdown skipped: turning triggers off needs a superuser")
            return
    runs = {}

    async def measure(label: str, no_triggers: bool) -> None:
        bare, real = [], []
        for _ in range(repeat):
            bare.append(await time_statements(engine, ids, targets, bare=True))
            real.append(await time_statements(engine, ids, targets, no_triggers=no_triggers))
        runs[label] = (
            [_median([r[i] for r in bare]) for i in range(3)],
            [_median([r[i] for r in real]) for i in range(3)],
        )

    await measure("real schema", False)
    await measure("triggers and foreign-key checks off", True)
    async with engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        extra = await raw.fetch(
            "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS ddl"
            "  FROM pg_index AS i"
            " WHERE i.indrelid IN ('customers'::regclass, 'assignments'::regclass)"
            "   AND NOT i.indisprimary AND NOT i.indisunique"
        )
        for row in extra:
            await raw.execute(f"DROP INDEX {row['name']}")
    await measure(f"without the {len(extra)} non-unique indexes", False)
    await measure("both", True)
    async with engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        for row in extra:
            await raw.execute(row["ddl"])
    print("where the floor's time goes (update owners / close rows / insert rows, medians):")
    for label, (bare, real) in runs.items():
        print(
            f"  {label}: " + " / ".join(f"{t:.3f}" for t in real) + f" s = {sum(real):.3f} s"
            f" · bare " + " / ".join(f"{t:.3f}" for t in bare) + f" s = {sum(bare):.3f} s"
            f" · ratio {sum(real) / sum(bare):.2f}×"
        )


async def time_baton(engine, ids, targets) -> float:
    async with AsyncSession(engine) as session:
        started = time.perf_counter()
        moved = await move_customers(
            session,
            customer_ids=ids,
            manager_ids=targets,
            reason="auto",
            actor="bench",
            at=datetime.now(UTC),
        )
        elapsed = time.perf_counter() - started
        assert moved == len(ids), moved
        await session.rollback()
    return elapsed


async def time_copy_floor(engine) -> tuple[float, int]:
    """The least a loader can do: the three columns the engine cannot work without (id, tier,
    owner), fixed width, one binary COPY, one numpy frombuffer."""
    row = np.dtype(
        [
            ("n", ">i2"),
            ("l1", ">i4"),
            ("id", "V16"),
            ("l2", ">i4"),
            ("tier", ">i2"),
            ("l3", ">i4"),
            ("owner", "V16"),
        ]
    )
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        buffer = io.BytesIO()
        started = time.perf_counter()
        await raw.copy_from_query(FLOOR_COPY, output=buffer, format="binary")
        data = buffer.getbuffer()
        rows = np.frombuffer(data, dtype=row, count=(len(data) - 21) // row.itemsize, offset=19)
        ids, tiers, owners = rows["id"].copy(), rows["tier"].astype(np.int16), rows["owner"].copy()
        elapsed = time.perf_counter() - started
        del rows, data
        return elapsed, len(ids) + 0 * len(tiers) * len(owners)


async def time_columns(engine, *, cold: bool = False) -> tuple[dict[str, float], int]:
    """What a rebalance does to read the whole book: tiers, managers, customers as columns,
    workloads; each part's time and the whole. ``cold``: the attribute combinations are not
    known yet (a process's first load, or one after a new combination), so they are read in
    a pass of their own first."""
    if cold:
        columnar._known_combinations = None
    parts: dict[str, float] = {}
    async with AsyncSession(engine) as session:
        started = time.perf_counter()
        tiers = await loading.load_tiers(session)
        managers = await loading.load_managers(session, workloads=False)
        parts["managers"] = time.perf_counter() - started
        mark = time.perf_counter()
        cols = await columnar.load_owned_customer_columns(session, tiers=tiers, managers=managers)
        parts["customers"] = time.perf_counter() - mark
        mark = time.perf_counter()
        columnar.with_workloads(managers, cols, tiers)
        parts["workloads"] = time.perf_counter() - mark
        parts["total"] = time.perf_counter() - started
        return parts, len(cols)


# The loader's query with tier, region, language and industry left uncoded (a constant
# instead of the join on the kept combinations): what the attribute coding costs the server.
_JOIN = columnar._COPY[columnar._COPY.index("      LEFT JOIN") : columnar._COPY.index("     WHERE")]
WITHOUT_ATTRIBUTES = columnar._COPY.replace(_JOIN, "").replace("COALESCE(d.idx - 1, -1)", "0")


async def time_server(engine) -> dict[str, float]:
    """Server time (``EXPLAIN ANALYZE``, rows not sent) of the loader's COPY query, of it
    without the attribute coding, and of the floor's query."""
    async with AsyncSession(engine) as session:
        combos = columnar._known_combinations or []
        raw = await driver_connection(session)
        attributes = [[c[i] for c in combos] for i in range(4)]
        out = {}
        for label, query, args in (
            ("query", columnar._COPY, tuple(attributes)),
            ("no_attributes", WITHOUT_ATTRIBUTES, ()),
            ("floor_query", ENGINE_COLUMNS_COPY, ()),
        ):
            plan = await raw.fetch(f"EXPLAIN (ANALYZE, TIMING OFF) {query}", *args)
            out[label] = float(plan[-1][0].split(":")[1].split()[0]) / 1000
        await session.rollback()
        return out


async def bench_loading(engine, repeat: int) -> None:
    """The whole-book load against its floors, interleaved run by run (medians)."""
    await time_columns(engine)  # the combinations known, as in a running service
    runs: dict[str, list[float]] = {}
    rows = 0
    for _ in range(repeat):
        for label, measure in (
            ("three", lambda: time_copy_floor(engine)),
            ("floor", lambda: time_engine_columns_floor(engine)),
            ("floor_in_loop", lambda: time_engine_columns_floor(engine, in_loop=True)),
            ("warm", lambda: time_columns(engine)),
            ("cold", lambda: time_columns(engine, cold=True)),
            ("server", lambda: time_server(engine)),
        ):
            result = await measure()
            if label == "server":
                for part, t in result.items():
                    runs.setdefault(f"server_{part}", []).append(t)
            elif label in ("warm", "cold"):
                parts, rows = result
                for part, t in parts.items():
                    runs.setdefault(f"{label}_{part}", []).append(t)
            else:
                runs.setdefault(label, []).append(result[0] if label == "three" else result)
    m = {k: _median(v) for k, v in runs.items()}
    w, wl, o, c = m["floor"], m["floor_in_loop"], m["warm_total"], m["cold_total"]
    print(
        f"load {rows:,} customers for the engine: columns {o:.3f} s · COPY binary floor of "
        f"the columns the engine reads {w:.3f} s · ratio {o / w:.2f}× (target ≤ 1.5×) · "
        f"the floor gathered on the event loop as the loader does {wl:.3f} s · ratio "
        f"{o / wl:.2f}× · three-column floor (id, tier, owner, parsed) {m['three']:.3f} s · "
        f"ratio {o / m['three']:.2f}×"
    )
    print(
        f"  parts: managers {m['warm_managers']:.3f} s · customers' columns (one COPY, parsed "
        f"while it streams) {m['warm_customers']:.3f} s · workloads {m['warm_workloads']:.3f} s"
    )
    print(
        f"  server time of the queries (EXPLAIN ANALYZE, rows not sent): the loader's "
        f"{m['server_query']:.3f} s · without coding tier, region, language, industry "
        f"{m['server_no_attributes']:.3f} s · the floor's {m['server_floor_query']:.3f} s"
    )
    print(
        f"  with the combinations read first (a process's first load, or after a new "
        f"combination): {c:.3f} s · ratio {c / w:.2f}× (customers' columns "
        f"{m['cold_customers']:.3f} s)"
    )


def _median(xs):
    return statistics.median(xs)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="only the whole-book load, at 100k × 100 and (without --quick) 1M × 10k",
    )
    args = parser.parse_args()
    if args.load_only:
        for customers, managers in ((100_000, 100), (1_000_000, 10_000))[: 1 if args.quick else 2]:
            _, engine = await scratch_database(customers=customers, managers=managers)
            await bench_loading(engine, args.repeat)
            await engine.dispose()
        return
    moves = 10_000 if args.quick else 100_000
    load = 100_000 if args.quick else 1_000_000
    managers = 100 if args.quick else 10_000

    _, engine = await scratch_database(customers=load, managers=managers)
    ids, targets = await _moves(engine, moves)
    async with engine.begin() as conn:
        await (await conn.get_raw_connection()).driver_connection.execute(BARE_TABLES)
    floor, bare, ours = [], [], []
    for _ in range(args.repeat):
        bare.append(await time_floor(engine, ids, targets, bare=True))
        floor.append(await time_floor(engine, ids, targets))
        ours.append(await time_baton(engine, ids, targets))
    b, f, o = _median(bare), _median(floor), _median(ours)
    print(
        f"apply {moves:,} moves: raw floor {f:.3f} s · move_customers {o:.3f} s "
        f"· ratio {o / f:.2f}× (target ≤ 1.25×)"
    )
    print(
        f"the raw floor on the real schema {f:.3f} s · on bare tables {b:.3f} s "
        f"· ratio {f / b:.2f}× (target ≤ 2×)"
    )

    # Today's schema and the ones before migrations 0018, 0017 and 0016, in turns, statement
    # by statement, each beside the bare tables: what each migration took off a move.
    schemas = {
        "today (0018)": TODAY_REWRITTEN,
        "before 0018 (index of open periods, full pages)": BEFORE_0018,
        "before 0017 and 0018 (also per-row foreign keys)": BEFORE_0018 + BEFORE_0017,
        "before 0016, 0017 and 0018": BEFORE_0018 + BEFORE_0017 + BEFORE_0016,
    }
    by_schema: dict[str, list[list[float]]] = {name: [] for name in schemas}
    bare_runs = []
    for _ in range(args.repeat):
        for name, schema in schemas.items():
            bare_runs.append(await time_statements(engine, ids, targets, bare=True))
            by_schema[name].append(await time_statements(engine, ids, targets, schema=schema))
    b_all = _median([sum(r) for r in bare_runs])
    print(
        f"the raw floor by schema (update owners / close rows / insert rows, medians; "
        f"bare tables {b_all:.3f} s):"
    )
    for name, runs in by_schema.items():
        parts = [_median([r[i] for r in runs]) for i in range(3)]
        total = _median([sum(r) for r in runs])
        print(
            f"  {name}: " + " / ".join(f"{t:.3f}" for t in parts) + f" s = {total:.3f} s"
            f" · ratio to bare {total / b_all:.2f}×"
        )

    await breakdown(engine, ids, targets, args.repeat)

    await bench_loading(engine, args.repeat)
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
