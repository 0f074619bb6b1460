"""The reclaim sweep over a book against the bare set-based statements it needs, same run.

    .venv/bin/python -m bench.reclaim [--customers 200000] [--due 20000] [--rounds 3]

Both sides run on the same database and the same due customers, each round inside a
transaction that is rolled back, so every round starts from the same state. The baseline is
the least SQL that returns known customers to the pool with a valid ledger:
``UPDATE customers … FROM unnest`` + close their open ledger rows with the end reason. The
sweep is ``app.pool.service.sweep_reclaims`` as the worker runs it: the warning pass, finding
and locking the due customers in the whole book, ``move_customers`` (with the end reason).
Target (issue #17): at most 1.5× the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.migrate import upgrade
from app.db.session import create_session_factory, session_scope
from app.pool import service
from bench._db import server_url

BASELINE = [
    """
    UPDATE customers AS c SET manager_id = NULL, owner_since = NULL, version = c.version + 1,
           updated_at = :at
      FROM unnest(CAST(:ids AS uuid[])) AS i(id) WHERE c.id = i.id
    """,
    """
    UPDATE assignments AS a SET ended_at = :at, end_reason = 'reclaimed_inactive'
      FROM unnest(CAST(:ids AS uuid[])) AS i(id)
     WHERE a.customer_id = i.id AND a.ended_at IS NULL
    """,
]

# Customers spread over the managers; every `step`-th one quiet for 60 days (due), the others
# followed up yesterday.
GENERATE = """
WITH m AS (SELECT array_agg(id ORDER BY id) AS ids FROM managers),
c AS (
    INSERT INTO customers (name, tier_code, manager_id, owner_since, last_activity_at)
    SELECT 'Customer ' || g, 'standard', m.ids[1 + g % array_length(m.ids, 1)],
           now() - interval '90 days',
           CASE WHEN g % :step = 0 THEN now() - interval '60 days' ELSE now() - interval '1 day' END
      FROM generate_series(1, :n) AS g, m
    RETURNING id, manager_id, owner_since)
INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
SELECT id, manager_id, owner_since, 'seed', 'bench' FROM c
"""


async def _database() -> str:
    admin_url = server_url()
    name = f"bench_reclaim_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(upgrade, url)
    return url


async def main(customers: int, due: int, rounds: int) -> None:
    url = await _database()
    engine = create_async_engine(url, pool_size=2)
    factory = create_session_factory(engine)
    async with session_scope(factory) as s:
        await s.execute(
            text(
                "INSERT INTO tiers (code, name, rank, weight, min_manager_level) "
                "VALUES ('standard', 'Standard', 3, 2, 2)"
            )
        )
        await s.execute(
            text(
                "INSERT INTO managers (name, email, level, capacity) "
                "SELECT 'M' || g, 'm' || g || '@bench.example', 3, :cap "
                "FROM generate_series(1, 100) AS g"
            ),
            {"cap": customers * 2},
        )
        await s.execute(text(GENERATE), {"n": customers, "step": max(customers // due, 1)})
        await s.execute(
            text(
                "INSERT INTO reclaim_policies (tier_code, inactive_days, warning_days) "
                "VALUES ('standard', 30, 0)"
            )
        )
        await s.execute(text("ANALYZE"))
        ids = list(
            (
                await s.execute(
                    text(
                        "SELECT id FROM customers WHERE last_activity_at < now() - interval "
                        "'30 days' ORDER BY id"
                    )
                )
            ).scalars()
        )

    sweep_times: list[float] = []
    baseline_times: list[float] = []
    for _ in range(rounds):
        now = datetime.now(UTC)
        async with factory() as s:
            t0 = time.perf_counter()
            result = await service.sweep_reclaims(s, now=now)
            sweep_times.append(time.perf_counter() - t0)
            assert result.reclaimed == len(ids), (result, len(ids))
            await s.rollback()
        async with factory() as s:
            t0 = time.perf_counter()
            for statement in BASELINE:
                await s.execute(text(statement), {"ids": ids, "at": now})
            baseline_times.append(time.perf_counter() - t0)
            await s.rollback()
    await engine.dispose()

    sweep = statistics.median(sweep_times)
    baseline = statistics.median(baseline_times)
    print(f"customers               {customers}")
    print(f"due                     {len(ids)}")
    print(f"reclaim sweep           {sweep * 1000:8.1f} ms  (median of {rounds})")
    print(f"bare UPDATE + ledger    {baseline * 1000:8.1f} ms  (median of {rounds})")
    print(f"ratio                   {sweep / baseline:8.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--due", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.due, args.rounds))
