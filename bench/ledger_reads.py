"""Benchmark: the read paths over the ledger and the customers' owners, timed with and without
an index in the same run (interleaved, medians), so that dropping an index a move pays for is
shown not to slow a reader. Today it compares the schema with and without the index of open
ledger rows by manager that migration 0016 dropped.

    python -m bench.ledger_reads            # 1M customers × 10k managers
    python -m bench.ledger_reads --quick    # 100k customers × 100 managers
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.assignments import loading
from app.assignments import repository as ledger
from app.pool import repository as pool
from app.reports import repository as reports
from bench._db import scratch_database

INDEX = "CREATE INDEX bench_open_by_manager ON assignments (manager_id) WHERE ended_at IS NULL"
DROP = "DROP INDEX bench_open_by_manager"
SCANS = (
    "SELECT COALESCE(sum(idx_scan), 0) FROM pg_stat_user_indexes"
    " WHERE indexrelname = 'bench_open_by_manager'"
)

CALLS = 10  # calls per timing, averaged

Read = Callable[[AsyncSession], Awaitable[object]]


async def _fixture(engine: AsyncEngine, moves: int) -> tuple[list, list]:
    """Move ``moves`` customers once (closed rows, a history) and unassign a few (a pool)."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        rows = await raw.fetch("SELECT id, manager_id FROM customers ORDER BY id LIMIT $1", moves)
        managers = [r["id"] for r in await raw.fetch("SELECT id FROM managers ORDER BY id")]
    index = {m: i for i, m in enumerate(managers)}
    ids = [r["id"] for r in rows]
    targets = [managers[(index[r["manager_id"]] + 1) % len(managers)] for r in rows]
    async with AsyncSession(engine) as session:
        at = datetime.now(UTC) - timedelta(days=1)
        await ledger.move_customers(
            session, customer_ids=ids, manager_ids=targets, reason="auto", actor="bench", at=at
        )
        pooled = ids[: max(1, moves // 100)]
        await ledger.move_customers(
            session,
            customer_ids=pooled,
            manager_ids=[None] * len(pooled),
            reason="manual",
            actor="bench",
            at=at,
        )
        await session.commit()
    async with engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE")
    return ids, managers


def _reads(ids: list, managers: list) -> dict[str, Read]:
    now = datetime.now(UTC)
    customer, manager = ids[-1], managers[len(managers) // 2]
    week_ago, two_days_ago = now - timedelta(days=7), now - timedelta(days=2)

    def kpi(manager_id=None) -> reports.KpiQuery:
        return reports.KpiQuery(
            from_=week_ago,
            to=now,
            grouping="manager",
            sort="key",
            descending=False,
            offset=0,
            limit=50,
            manager_id=manager_id,
        )

    return {
        "history of a customer": lambda s: ledger.history(s, customer, after=None, limit=50),
        "owner of a customer at an instant": lambda s: ledger.owner_at(s, customer, two_days_ago),
        "a manager's book now (ledger)": lambda s: reports.customers_at(
            s, manager_id=manager, at=now, status=None, tier=None, after=None, limit=100
        ),
        "a manager's book two days ago": lambda s: reports.customers_at(
            s, manager_id=manager, at=two_days_ago, status=None, tier=None, after=None, limit=100
        ),
        "portfolio of a manager at an instant": lambda s: reports.portfolio_at(
            s, at=now, manager_id=manager, team=None, active=None, after=None, limit=100
        ),
        "KPIs of one manager over a week": lambda s: reports.kpis(s, kpi(manager)),
        "KPIs of all managers over a week (page)": lambda s: reports.kpis(s, kpi()),
        "pool: waiting customers": lambda s: pool.waiting(s, after=None, limit=100),
        "claims of a manager since a week": lambda s: pool.claims_since(
            s, manager_id=manager, since=week_ago
        ),
        "managers with workloads and intake": lambda s: loading.load_managers(s),
    }


async def _time(engine: AsyncEngine, read: Read) -> float:
    async with AsyncSession(engine) as session:
        await read(session)  # warm the plan and the cache
        started = time.perf_counter()
        for _ in range(CALLS):
            await read(session)
        elapsed = (time.perf_counter() - started) / CALLS
        # Report this backend's index scans as soon as it is idle again.
        await session.execute(text("SELECT pg_stat_force_next_flush()"))
        await session.rollback()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    customers = 100_000 if args.quick else 1_000_000
    managers = 100 if args.quick else 10_000
    _, engine = await scratch_database(customers=customers, managers=managers)
    ids, manager_ids = await _fixture(engine, customers // 10)
    reads = _reads(ids, manager_ids)
    without: dict[str, list[float]] = {k: [] for k in reads}
    with_: dict[str, list[float]] = {k: [] for k in reads}
    scans = 0
    for _ in range(args.repeat):
        # Each round times every read twice (without, with the index) back to back, each
        # read after an ANALYZE of the same table, so the two differ by the index alone.
        for name, read in reads.items():
            async with engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE assignments")
            without[name].append(await _time(engine, read))
            async with engine.begin() as conn:
                await conn.exec_driver_sql(INDEX)
                await conn.exec_driver_sql("ANALYZE assignments")
            with_[name].append(await _time(engine, read))
            async with engine.begin() as conn:
                scans += (await conn.exec_driver_sql(SCANS)).scalar_one()
                await conn.exec_driver_sql(DROP)
    print(
        f"ledger reads, {customers:,} customers, medians of {args.repeat}; "
        f"scans of the index while it existed: {scans}"
    )
    for name in reads:
        a, b = statistics.median(without[name]), statistics.median(with_[name])
        print(
            f"  {name}: without the index {a * 1000:.2f} ms · with it {b * 1000:.2f} ms "
            f"· ratio {a / b:.2f}×"
        )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
