"""Benchmark: the read paths over the ledger and the customers' owners, timed on two schemas
in the same run (interleaved rounds in alternating order, medians), so that a change a move
would gain from is shown to slow a reader or not. Today it compares the customers of 0019
(full pages) with customers whose pages keep 15 % free (a new owner's row version then stays
on its page; measured, not taken); each round rewrites customers into the schema it times (in
the same order of rows on both, one unrelated to their ids, as rows arrive) and the ledger as
0018 left it. The reads: a customer, customers by manager, by tier and in the pool (the pages
the API serves), a whole-book read (the binary COPY of the engine's columns), history by
customer, books and portfolios by manager at an instant, reports by manager and time, the
pool, claims, and ``baton check``'s ownership checks.

    python -m bench.ledger_reads            # 1M customers × 10k managers
    python -m bench.ledger_reads --quick    # 100k customers × 100 managers
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.assignments import loading
from app.assignments import repository as ledger
from app.check import CHECKS
from app.customers import repository as customers
from app.db.session import transaction_connection
from app.pool import repository as pool
from app.reports import repository as reports
from bench._db import scratch_database

# Each schema as statements that turn either one into it (customers and the ledger rewritten,
# so their pages are filled as that schema fills them).
_REWRITE = (
    "CREATE INDEX bench_shuffle ON customers (md5(id::text))",
    "CLUSTER customers USING bench_shuffle",
    "DROP INDEX bench_shuffle",
    "ALTER TABLE customers SET WITHOUT CLUSTER",
    "CLUSTER assignments USING pk_assignments",
)
TODAY = ("ALTER TABLE customers RESET (fillfactor)", *_REWRITE)
CUSTOMERS_ROOM = ("ALTER TABLE customers SET (fillfactor = 85)", *_REWRITE)
SCHEMAS = {"0019": TODAY, "customers 15 % free": CUSTOMERS_ROOM}
OPEN_PERIOD = text(
    "SELECT id, manager_id FROM assignments WHERE customer_id = :c AND ended_at IS NULL"
)
# What the engine reads of the whole book, as stored (see ``bench.apply``).
ENGINE_COLUMNS_COPY = (
    "SELECT c.id, c.tier_code, c.region, c.language, c.industry, c.pinned, c.manager_id, "
    "c.owner_since, c.annual_value, c.satisfaction FROM customers AS c "
    "WHERE c.status = 'active' AND c.manager_id IS NOT NULL"
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


async def _check(session: AsyncSession, name: str) -> object:
    return (await session.execute(text(CHECKS[name]))).all()


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

    async def page(s: AsyncSession, **filters) -> object:
        conn = await transaction_connection(s)
        return await customers.read_page(conn, filters=filters, limit=100)

    async def whole_book(s: AsyncSession) -> object:
        conn = await transaction_connection(s)
        await conn.copy_from_query(ENGINE_COLUMNS_COPY, output=io.BytesIO(), format="binary")
        return None

    async def sorted_page(s: AsyncSession) -> object:
        conn = await transaction_connection(s)
        return await customers.read_page(conn, filters={}, limit=100, sort="annual_value")

    async def one(s: AsyncSession) -> object:
        return await customers.read(await transaction_connection(s), customer)

    return {
        "a customer by id": one,
        "customers of a manager (a page of 100)": lambda s: page(s, manager_id=manager),
        "customers of a manager, owned and active": lambda s: page(
            s, manager_id=manager, status="active"
        ),
        "customers of a tier (a page of 100)": lambda s: page(s, tier="strategic"),
        "the pool (a page of 100)": lambda s: page(s, pool=None),
        "customers sorted by annual value (reads every row)": sorted_page,
        "the whole book's engine columns (binary COPY)": whole_book,
        "open period of a customer": lambda s: s.execute(OPEN_PERIOD, {"c": customer}),
        # What a move's close reads before it writes (the rows themselves, not a count an
        # index could answer alone).
        "open periods of 1,000 customers (a move's close)": lambda s: s.execute(
            text(
                "SELECT id, manager_id FROM assignments WHERE customer_id = ANY(:ids)"
                " AND ended_at IS NULL"
            ),
            {"ids": ids[-1000:]},
        ),
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
        "check: at most one open period": lambda s: _check(s, "at_most_one_open_ledger_row"),
        "check: owners match open periods": lambda s: _check(s, "owner_matches_open_ledger_row"),
    }


async def _time(engine: AsyncEngine, read: Read) -> float:
    async with AsyncSession(engine) as session:
        await read(session)  # warm the plan and the cache
        started = time.perf_counter()
        for _ in range(CALLS):
            await read(session)
        elapsed = (time.perf_counter() - started) / CALLS
        await session.rollback()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    customers_count = 100_000 if args.quick else 1_000_000
    managers = 100 if args.quick else 10_000
    _, engine = await scratch_database(customers=customers_count, managers=managers)
    ids, manager_ids = await _fixture(engine, customers_count // 10)
    reads = _reads(ids, manager_ids)
    times: dict[str, dict[str, list[float]]] = {n: {k: [] for k in reads} for n in SCHEMAS}
    for round_ in range(args.repeat):
        # Each round rewrites the tables into each schema in turn (first one, then the other
        # first) and times every read on it.
        order = list(SCHEMAS.items())
        for schema, statements in order if round_ % 2 == 0 else order[::-1]:
            async with engine.begin() as conn:
                for statement in statements:
                    await conn.exec_driver_sql(statement)
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("VACUUM ANALYZE customers, assignments")
            for name, read in reads.items():
                times[schema][name].append(await _time(engine, read))
    a_name, b_name = SCHEMAS
    print(
        f"customer and ledger reads, {customers_count:,} customers, medians of {args.repeat},"
        f" {a_name} and {b_name} in turns:"
    )
    for name in reads:
        a, b = (statistics.median(times[n][name]) for n in SCHEMAS)
        print(
            f"  {name}: {a_name} {a * 1000:.2f} ms · {b_name} {b * 1000:.2f} ms"
            f" · ratio {b / a:.2f}×"
        )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
