"""Benchmark: writing a plan (moves + ledger) and loading customers for the engine, each
against the raw set-based floor measured in the same run. The write floor is three bare
statements over arrays (update owners, close the open ledger rows, insert the new ones): the
least any writer can do while the ledger holds one open row per customer. Those statements
are timed on the real schema and on bare tables (no index but what they look up by, no
trigger) in turns, like with like: tables vacuumed and a checkpoint before each run, then
either an untimed run first (no full-page images in the timed one) or none (every first touch
of a page writes its image, as after any checkpoint). Each line gives wall seconds, the
server's CPU seconds (the backend's run time, far steadier than the wall clock on a shared
machine) and WAL per statement; then today's schema against the ones before it, each index
and trigger dropped alone, and each step of the ledger's check.

    python -m bench.apply                # 100k moves, 1M-customer load
    python -m bench.apply --quick        # 10k moves, 100k-customer load
    python -m bench.apply --moves-only   # the moves against the floor and 0020 against before
    python -m bench.apply --load-only    # the load alone, at 100k and 1M customers
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import os
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


async def time_engine_columns_floor(
    engine, *, in_loop: bool = False, parallel: bool = False
) -> float:
    """The COPY floor, into a BytesIO (asyncpg writes each chunk in a worker thread) or,
    ``in_loop``, gathered on the event loop as the loader gathers it; ``parallel``: with the
    planner's charge for parallel rows lifted, as the loader lifts it for its COPY."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        if parallel:
            await raw.execute("SET parallel_tuple_cost = 0")
        buffer = bytearray()

        async def receive(chunk: bytes) -> None:
            buffer.extend(chunk)

        output = receive if in_loop else io.BytesIO()
        started = time.perf_counter()
        await raw.copy_from_query(ENGINE_COLUMNS_COPY, output=output, format="binary")
        elapsed = time.perf_counter() - started
        if parallel:
            await raw.execute("RESET parallel_tuple_cost")  # the connection goes back to the pool
        return elapsed


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


def _migration(revision: str) -> ModuleType:
    """A migration module by its revision id (their file names are not importable names)."""
    (path,) = (Path(__file__).parents[1] / "migrations" / "versions").glob(f"*_{revision}_*.py")
    spec = importlib.util.spec_from_file_location(f"migration_{revision}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Each schema is timed on tables rewritten in the timed transaction (untimed), so that schemas
# differ by their definition alone, not by how their pages happen to be filled. The customers
# are rewritten in an order unrelated to their ids (the order rows arrive in), not by the
# primary key: the moves are the first customers by id, and a table sorted by id would put all
# of them on the same few pages.
REWRITE = (
    "CREATE INDEX bench_shuffle ON customers (md5(id::text))",
    "CLUSTER customers USING bench_shuffle",
    "DROP INDEX bench_shuffle",
    "CLUSTER assignments USING pk_assignments",
    "ANALYZE customers",
    "ANALYZE assignments",
)
TODAY_REWRITTEN = REWRITE
# Before migration 0020: the reference checks planned their lock query at every call, compared
# every updated customer's old and new id, and gathered the ledger's keys in two passes.
_M0020 = _migration("0020")
BEFORE_0020 = (
    _M0020.REQUIRE_0017,
    _M0020.CUSTOMERS_0017,
    _M0020.ASSIGNMENTS_0019,
    "DROP TRIGGER customers_referenced_rekey ON customers",
)
# Before migration 0019: the ledger's check locked an open period's customer, then read and
# key-share-locked it again to prove it exists (what the migration's downgrade restores).
_M0019 = _migration("0019")
BEFORE_0019 = (*BEFORE_0020, _M0019.OPEN_PERIODS_0018, _M0019.ASSIGNMENTS_0018)
# Measured and not taken: customers' pages 15 % free, so that a new owner's row version stays
# on its page.
CUSTOMERS_ROOM = ("ALTER TABLE customers SET (fillfactor = 85)",)
# The ledger before migration 0018: the partial unique index of open periods (which made every
# close a non-HOT update), full pages, and 0017's reference check without the open-period count
# (what migration 0018's downgrade restores).
CHECK_0017: str = _migration("0018")._ASSIGNMENTS_0017
BEFORE_0018 = (
    *BEFORE_0019,
    "CREATE UNIQUE INDEX uq_assignments_open_per_customer ON assignments (customer_id)"
    " WHERE ended_at IS NULL",
    "ALTER TABLE assignments SET (fillfactor = 100)",
    CHECK_0017,
)

# The steps of the ledger's check, each timed alone after the three statements (in their
# transaction, so with their locks held, as the check runs): $1 the moved customers, $2 the
# distinct new owners.
CHECK_STEPS = {
    "lock the open periods' customers (FOR NO KEY UPDATE, which proves they exist)": (
        "SELECT array_agg(id) FROM (SELECT id FROM customers WHERE id = ANY($1::uuid[])"
        " ORDER BY id FOR NO KEY UPDATE) AS held",
        1,
    ),
    "count their open periods (= ANY over the keys)": (
        "SELECT a.customer_id FROM assignments AS a"
        " WHERE a.customer_id = ANY($1::uuid[]) AND a.ended_at IS NULL"
        " GROUP BY a.customer_id HAVING count(*) > 1 ORDER BY a.customer_id LIMIT 1",
        1,
    ),
    "count them with a join over the sorted keys instead": (
        "SELECT a.customer_id FROM unnest($1::uuid[]) AS k(id)"
        " JOIN assignments AS a ON a.customer_id = k.id WHERE a.ended_at IS NULL"
        " GROUP BY a.customer_id HAVING count(*) > 1 ORDER BY a.customer_id LIMIT 1",
        1,
    ),
    "key-share the customers again (before 0019; gone)": (
        "SELECT array_agg(id) FROM (SELECT id FROM customers WHERE id = ANY($1::uuid[])"
        " ORDER BY id FOR KEY SHARE) AS locked",
        1,
    ),
    "key-share the new owners": (
        "SELECT array_agg(id) FROM (SELECT id FROM managers WHERE id = ANY($1::uuid[])"
        " ORDER BY id FOR KEY SHARE) AS locked",
        2,
    ),
}


async def _checkpoints_on_request(engine) -> bool:
    """On the benchmark's own throwaway server, no automatic checkpoint (by WAL volume or by
    time) falls inside a timed run: a 1M run writes a few hundred MB of WAL per run, past the
    default ``max_wal_size``, and would pay full-page images on one side only. Left alone on a
    server given by ``BENCH_DATABASE_URL`` (it is someone's); returns whether it was set."""
    if os.environ.get("BENCH_DATABASE_URL"):
        return False
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute("ALTER SYSTEM SET max_wal_size = '16GB'")
        await raw.execute("ALTER SYSTEM SET checkpoint_timeout = '1h'")
        await raw.execute("SELECT pg_reload_conf()")
    return True


async def _moves(engine, n):
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        rows = await raw.fetch("SELECT id, manager_id FROM customers ORDER BY id LIMIT $1", n)
        managers = [r["id"] for r in await raw.fetch("SELECT id FROM managers ORDER BY id")]
    index = {m: i for i, m in enumerate(managers)}
    ids = [r["id"] for r in rows]
    targets = [managers[(index[r["manager_id"]] + 1) % len(managers)] for r in rows]
    return ids, targets


class Timing:
    """One run's three statements: wall seconds, the server's CPU seconds (when the server
    runs on this machine: its backend's run time from /proc, which a loaded machine disturbs
    far less than the wall clock) and WAL bytes written."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.wal: list[float] = []


def _cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            if comm.read().strip() != "postgres":
                return None
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except OSError:
        return None


async def _timed(raw, statement: str, *params) -> tuple[float, float | None, float]:
    pid = raw.get_server_pid()
    lsn = await raw.fetchval("SELECT pg_current_wal_insert_lsn()")
    cpu = _cpu_seconds(pid)
    started = time.perf_counter()
    await raw.execute(statement, *params)
    wall = time.perf_counter() - started
    after = _cpu_seconds(pid)
    wal = await raw.fetchval("SELECT pg_current_wal_insert_lsn() - $1::pg_lsn", lsn)
    return wall, (after - cpu if cpu is not None and after is not None else None), float(wal)


async def _prepare(raw, tables: str, *, checkpoint: bool) -> None:
    """Like with like before a timed run: the tables vacuumed (earlier runs' rolled-back rows
    gone) and a checkpoint, so that every page a run touches first writes its full image."""
    await raw.execute(f"VACUUM {tables}")
    if checkpoint:
        await raw.execute("CHECKPOINT")


async def time_statements(
    engine,
    ids,
    targets,
    *,
    bare: bool = False,
    no_triggers: bool = False,
    schema: tuple[str, ...] = (),
    steps: dict[str, tuple[str, int]] | None = None,
    checkpoint: bool = False,
) -> Timing:
    """The three statements on the real schema, or (``bare``) on the bare tables, in a
    transaction rolled back; ``no_triggers`` runs them with triggers and foreign-key checks
    off (a superuser's ``session_replication_role = replica``), to show what those cost;
    ``schema`` changes the schema first, in the same transaction (untimed); ``steps`` are
    timed after the three, in their transaction (wall seconds in ``Timing.wall`` after the
    three). ``checkpoint``: right after a checkpoint (each first touch of a page since writes
    its full image); otherwise after an untimed run of the same, so that neither side pays
    full-page images (on rewritten tables there are none to pay)."""
    update, close, insert = FLOOR_UPDATE, FLOOR_CLOSE, FLOOR_INSERT
    tables = "customers, assignments"
    if bare:
        update = update.replace("UPDATE customers", "UPDATE bare_customers")
        close = close.replace("UPDATE assignments", "UPDATE bare_assignments")
        insert = insert.replace("INTO assignments", "INTO bare_assignments")
        tables = "bare_customers, bare_assignments"
    owners = sorted(set(targets))
    rewritten = any(statement.startswith("CLUSTER") for statement in schema)
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await _prepare(raw, tables, checkpoint=True)
        rounds = 1 if checkpoint or rewritten else 2
        for round_ in range(rounds):
            timing = Timing()
            tx = raw.transaction()
            await tx.start()
            if no_triggers:
                await raw.execute("SET LOCAL session_replication_role = replica")
            for statement in schema:
                await raw.execute(statement)
            for statement, params in (
                (update, (ids, targets)),
                (close, (ids,)),
                (insert, (ids, targets)),
            ):
                wall, cpu, wal = await _timed(raw, statement, *params)
                timing.wall.append(wall)
                timing.cpu.append(cpu if cpu is not None else float("nan"))
                timing.wal.append(wal)
            for statement, which in (steps or {}).values():
                wall, _, _ = await _timed(raw, statement, ids if which == 1 else owners)
                timing.wall.append(wall)
            await tx.rollback()
            if round_ + 1 < rounds:
                await raw.execute(f"VACUUM {tables}")
    return timing


async def time_floor(engine, ids, targets, *, bare: bool = False) -> float:
    """The three statements on the real schema, or (``bare``) on the bare tables."""
    return sum((await time_statements(engine, ids, targets, bare=bare)).wall)


def _medians(runs: list[Timing], attribute: str, n: int = 3) -> list[float]:
    return [_median([getattr(r, attribute)[i] for r in runs]) for i in range(n)]


def _total(runs: list[Timing], attribute: str) -> float:
    return _median([sum(getattr(r, attribute)[:3]) for r in runs])


def _line(label: str, runs: list[Timing], bare: list[Timing]) -> str:
    wall, cpu = _medians(runs, "wall"), _medians(runs, "cpu")
    wal = _medians(runs, "wal")
    b_wall, b_cpu = _total(bare, "wall"), _total(bare, "cpu")
    text_ = (
        f"  {label}: " + " / ".join(f"{t:.3f}" for t in wall) + f" s = {_total(runs, 'wall'):.3f}"
        f" s · ratio to bare {_total(runs, 'wall') / b_wall:.2f}×"
    )
    if cpu[0] == cpu[0]:  # not NaN: the server's CPU time is known
        text_ += (
            " · server CPU " + " / ".join(f"{t:.3f}" for t in cpu) + f" s, ratio"
            f" {_total(runs, 'cpu') / b_cpu:.2f}×"
        )
    return text_ + " · WAL " + " / ".join(f"{w / 1e6:.1f}" for w in wal) + " MB"


async def compare(
    engine, ids, targets, repeat: int, variants: dict[str, dict], title: str
) -> dict[str, list[Timing]]:
    """Each variant (``time_statements`` keywords) in turns with the bare tables, ``repeat``
    rounds; prints a line per variant with medians and ratios to the bare runs of its turns."""
    runs: dict[str, list[Timing]] = {name: [] for name in variants}
    bare: dict[str, list[Timing]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, options in variants.items():
            checkpoint = options.get("checkpoint", False)
            bare[name].append(
                await time_statements(engine, ids, targets, bare=True, checkpoint=checkpoint)
            )
            runs[name].append(await time_statements(engine, ids, targets, **options))
    every_bare = [t for ts in bare.values() for t in ts]
    print(
        f"{title} (update owners / close rows / insert rows, medians of {repeat}; bare tables"
        f" {_total(every_bare, 'wall'):.3f} s, bare per statement "
        + " / ".join(f"{t:.3f}" for t in _medians(every_bare, "wall"))
        + " s, server CPU "
        + " / ".join(f"{t:.3f}" for t in _medians(every_bare, "cpu"))
        + " s, WAL "
        + " / ".join(f"{w / 1e6:.1f}" for w in _medians(every_bare, "wal"))
        + " MB):"
    )
    for name in variants:
        print(_line(name, runs[name], bare[name]))
    return runs


# Where the floor's time goes: each index a move writes dropped alone, triggers and
# foreign-key checks off, and the ledger check's steps each timed alone.
async def breakdown(engine, ids, targets, repeat: int) -> None:
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        superuser = await raw.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        indexes = await raw.fetch(
            "SELECT i.indexrelid::regclass::text AS name, c.conname AS constraint_name,"
            "       i.indrelid::regclass::text AS table_name"
            "  FROM pg_index AS i LEFT JOIN pg_constraint AS c ON c.conindid = i.indexrelid"
            " WHERE i.indrelid IN ('customers'::regclass, 'assignments'::regclass)"
            "   AND NOT i.indisprimary ORDER BY 3, 1"
        )
    variants: dict[str, dict] = {"0020 as it is": {}}
    for row in indexes:
        drop = (
            f"ALTER TABLE {row['table_name']} DROP CONSTRAINT {row['constraint_name']}"
            if row["constraint_name"]
            else f"DROP INDEX {row['name']}"
        )
        variants[f"without {row['name']}"] = {"schema": (drop,)}
    variants["without the ledger's check"] = {
        "schema": ("ALTER TABLE assignments DISABLE TRIGGER assignments_references_insert",)
    }
    variants["without customers' triggers (references, workloads)"] = {
        "schema": (
            "ALTER TABLE customers DISABLE TRIGGER customers_references_update",
            "ALTER TABLE customers DISABLE TRIGGER customers_loads_update",
        )
    }
    if superuser:
        variants["triggers and foreign-key checks off"] = {"no_triggers": True}
    await compare(
        engine, ids, targets, repeat, variants, "where the floor's time goes on today's schema"
    )

    steps = []
    for _ in range(repeat):
        steps.append(await time_statements(engine, ids, targets, steps=CHECK_STEPS))
    print(f"the ledger check's steps, each alone after the three statements (medians of {repeat}):")
    for i, name in enumerate(CHECK_STEPS):
        print(f"  {name}: {_median([t.wall[3 + i] for t in steps]):.3f} s")


async def time_one_customer_moves(engine, ids, targets, schema: tuple[str, ...] = ()) -> float:
    """The three statements for one customer at a time (what a PATCH or a placement writes),
    prepared, in one transaction rolled back: the server's CPU milliseconds per move. The
    checks' fixed cost per statement shows here, where a set-based move spreads it thin."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        tx = raw.transaction()
        await tx.start()
        for statement in schema:
            await raw.execute(statement)
        update, close, insert = [
            await raw.prepare(s) for s in (FLOOR_UPDATE, FLOOR_CLOSE, FLOOR_INSERT)
        ]
        warm = min(50, len(ids) // 4)
        pid = raw.get_server_pid()
        cpu: float | None = None
        for i in range(len(ids)):
            if i == warm:
                cpu = _cpu_seconds(pid)
            await update.fetch([ids[i]], [targets[i]])
            await close.fetch([ids[i]])
            await insert.fetch([ids[i]], [targets[i]])
        after = _cpu_seconds(pid)
        await tx.rollback()
    if cpu is None or after is None:
        return float("nan")
    return (after - cpu) / (len(ids) - warm) * 1e3


async def one_customer_moves(engine, ids, targets, repeat: int) -> None:
    """Today's checks against those before 0020, in turns, one customer per statement."""
    n = min(len(ids), 2_000)
    runs: dict[str, list[float]] = {"today (0020)": [], "before 0020": []}
    for i in range(repeat):
        order = list(runs) if i % 2 == 0 else list(runs)[::-1]
        for name in order:
            schema = BEFORE_0020 if name == "before 0020" else ()
            runs[name].append(await time_one_customer_moves(engine, ids[:n], targets[:n], schema))
    print(
        f"{n:,} one-customer moves (update owner / close / insert, prepared), server CPU per"
        f" move, medians of {repeat} in turns: "
        + " · ".join(f"{name} {_median(values):.3f} ms" for name, values in runs.items())
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
    parts: dict[str, float] = {"ordering": 0.0}
    assemble = columnar._assemble

    def timed_assemble(*args):
        mark = time.perf_counter()
        try:
            return assemble(*args)
        finally:
            parts["ordering"] += time.perf_counter() - mark

    columnar._assemble = timed_assemble
    try:
        return await _time_columns(engine, parts)
    finally:
        columnar._assemble = assemble


async def _time_columns(engine, parts: dict[str, float]) -> tuple[dict[str, float], int]:
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
WITHOUT_ATTRIBUTES = columnar._COPY.replace(_JOIN, "").replace("COALESCE(d.code, -2)", "0")


async def time_server(engine) -> dict[str, float]:
    """Server time (``EXPLAIN ANALYZE``, rows not sent) of the loader's COPY query, of it
    without the attribute coding, and of the floor's query, each planned as the loader's is
    (the charge for parallel rows lifted, for this transaction only)."""
    async with AsyncSession(engine) as session:
        combos = columnar._known_combinations or []
        raw = await driver_connection(session)
        await raw.execute(columnar._PARALLEL, "0")
        attributes = [[c[i] for c in combos] for i in range(4)]
        attributes.append(list(range(0, 2 * len(combos), 2)))
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
            ("floor_parallel", lambda: time_engine_columns_floor(engine, parallel=True)),
            (
                "floor_parallel_in_loop",
                lambda: time_engine_columns_floor(engine, parallel=True, in_loop=True),
            ),
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
    wp, wpl = m["floor_parallel"], m["floor_parallel_in_loop"]
    # The target is held against the fastest of the four ways to gather the floor's COPY
    # (serial or with parallel workers as the loader allows them; into a buffer or on the
    # event loop as the loader gathers it): no way of reading the same columns is left out.
    lowest = min(w, wl, wp, wpl)
    print(
        f"load {rows:,} customers for the engine: columns {o:.3f} s · COPY binary floor of "
        f"the columns the engine reads, the fastest of four ways {lowest:.3f} s · ratio "
        f"{o / lowest:.2f}× (target ≤ 1.5×) · serial into a buffer {w:.3f} s ({o / w:.2f}×) · "
        f"serial, gathered on the event loop as the loader does {wl:.3f} s ({o / wl:.2f}×) · "
        f"parallel workers allowed as the loader allows them {wp:.3f} s ({o / wp:.2f}×) · "
        f"parallel and on the event loop {wpl:.3f} s ({o / wpl:.2f}×) · "
        f"three-column floor (id, tier, owner, parsed) {m['three']:.3f} s · "
        f"ratio {o / m['three']:.2f}×"
    )
    print(
        f"  parts: managers {m['warm_managers']:.3f} s · customers' columns (one COPY, parsed "
        f"while it streams) {m['warm_customers']:.3f} s, of which after the COPY (id order, "
        f"columns) {m['warm_ordering']:.3f} s · workloads {m['warm_workloads']:.3f} s"
    )
    print(
        f"  server time of the queries (EXPLAIN ANALYZE, rows not sent): the loader's "
        f"{m['server_query']:.3f} s · without coding tier, region, language, industry "
        f"{m['server_no_attributes']:.3f} s · the floor's {m['server_floor_query']:.3f} s"
    )
    print(
        f"  with the combinations read first (a process's first load, or after a new "
        f"combination): {c:.3f} s · ratio {c / lowest:.2f}× (customers' columns "
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
    parser.add_argument(
        "--moves-only",
        action="store_true",
        help="only the moves against the bare tables and today's schema against the one"
        " before 0020 (no older schemas, no breakdown, no load): what a 1M run has time for",
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
    if not await _checkpoints_on_request(engine):
        print("automatic checkpoints left as the server has them: a run may pay full-page images")
    floor, ours = [], []
    for _ in range(args.repeat):
        floor.append(await time_floor(engine, ids, targets))
        ours.append(await time_baton(engine, ids, targets))
    f, o = _median(floor), _median(ours)
    print(
        f"apply {moves:,} moves: raw floor {f:.3f} s · move_customers {o:.3f} s "
        f"· ratio {o / f:.2f}× (target ≤ 1.25×)"
    )
    await compare(
        engine,
        ids,
        targets,
        args.repeat,
        {
            "no full-page images (an untimed run first)": {},
            "right after a checkpoint (every first touch of a page writes its image)": {
                "checkpoint": True
            },
            "the same tables with the checks before 0020 (no full-page images)": {
                "schema": BEFORE_0020
            },
            "the same, right after a checkpoint": {
                "schema": BEFORE_0020,
                "checkpoint": True,
            },
        },
        "the raw floor on the real schema against bare tables (target ≤ 2×), tables vacuumed"
        " and a checkpoint before each run",
    )

    older = _older_schemas()
    # Today's schema and the ones before migrations 0020, 0019, 0018, 0017 and 0016, in turns,
    # statement by statement, each beside the bare tables: what each migration took off a move.
    await compare(
        engine,
        ids,
        targets,
        args.repeat,
        {
            "today (0020)": {"schema": TODAY_REWRITTEN},
            "before 0020 (lock queries planned per call, every id compared)": {
                "schema": BEFORE_0020 + REWRITE
            },
            "before 0019 (customers twice in the ledger's check)": {
                "schema": BEFORE_0019 + REWRITE
            },
            "today with customers' pages 15 % free (measured, not taken)": {
                "schema": CUSTOMERS_ROOM + REWRITE
            },
            **({} if args.moves_only else older),
        },
        "the raw floor by schema, tables rewritten in the timed transaction (no full-page"
        " images on either side)",
    )
    await one_customer_moves(engine, ids, targets, max(args.repeat, 5))
    if args.moves_only:
        await engine.dispose()
        return

    await breakdown(engine, ids, targets, args.repeat)

    await bench_loading(engine, args.repeat)
    await engine.dispose()


def _older_schemas() -> dict[str, dict]:
    return {
        "before 0018 (index of open periods, full ledger pages)": {"schema": BEFORE_0018 + REWRITE},
        "before 0017 and 0018 (also per-row foreign keys)": {
            "schema": BEFORE_0018 + BEFORE_0017 + REWRITE
        },
        "before 0016, 0017 and 0018": {"schema": BEFORE_0018 + BEFORE_0017 + BEFORE_0016 + REWRITE},
    }


if __name__ == "__main__":
    asyncio.run(main())
