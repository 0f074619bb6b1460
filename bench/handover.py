"""Execute a 10 000-customer handover and compare it with the raw SQL baseline, same run.

    .venv/bin/python -m bench.handover [--customers 10000] [--rounds 5]

Both sides run on the same database and the same moves, each round inside a transaction that
is rolled back, so every round starts from the same state. The baseline is the least SQL that
keeps the ledger valid: ``UPDATE customers … FROM unnest`` + close the open ledger rows +
``INSERT … SELECT unnest``. The handover side is ``execute_handover`` as the API runs it
(locks, ledger, item updates, audit, response). Target: at most 2× the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.migrate import upgrade
from app.db.session import create_session_factory, session_scope
from app.handovers import lifecycle, planning
from app.handovers.schemas import ActionIn, HandoverCreate
from bench._db import server_url

BASELINE = [
    """
    UPDATE customers AS c SET manager_id = i.m, version = c.version + 1, updated_at = :at
      FROM unnest(CAST(:ids AS uuid[]), CAST(:ms AS uuid[])) AS i(id, m) WHERE c.id = i.id
    """,
    """
    UPDATE assignments AS a SET ended_at = :at
      FROM unnest(CAST(:ids AS uuid[])) AS i(id)
     WHERE a.customer_id = i.id AND a.ended_at IS NULL
    """,
    """
    INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor, handover_id)
    SELECT i.id, i.m, :at, 'handover', 'bench', :h
      FROM unnest(CAST(:ids AS uuid[]), CAST(:ms AS uuid[])) AS i(id, m)
    """,
]

GENERATE = """
WITH c AS (
    INSERT INTO customers (name, tier_code, region, language, manager_id)
    SELECT 'Customer ' || g, CASE WHEN g % 10 = 0 THEN 'key' ELSE 'standard' END,
           'r' || g % 4, 'zh', :m
      FROM generate_series(1, :n) AS g
    RETURNING id, manager_id)
INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
SELECT id, manager_id, now() - interval '200 days', 'seed', 'bench' FROM c
"""


async def _database() -> str:
    admin_url = server_url()
    name = f"bench_handover_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(upgrade, url)
    return url


async def main(customers: int, rounds: int) -> None:
    url = await _database()
    engine = create_async_engine(url, pool_size=2)
    factory = create_session_factory(engine)
    async with session_scope(factory) as s:
        await s.execute(
            text(
                "INSERT INTO tiers (code, name, rank, weight, min_manager_level) VALUES "
                "('strategic', 'Strategic', 1, 8, 4), ('key', 'Key', 2, 4, 3), "
                "('standard', 'Standard', 3, 2, 2)"
            )
        )
        leaving = await s.scalar(
            text(
                "INSERT INTO managers (name, email, level, capacity) "
                "VALUES ('Leaving', 'leaving@bench.example', 4, 1000000) RETURNING id"
            )
        )
        await s.execute(
            text(
                "INSERT INTO managers (name, email, level, capacity, region) "
                "SELECT 'M' || g, 'm' || g || '@bench.example', 3 + g % 3, :cap, 'r' || g % 4 "
                "FROM generate_series(1, 50) AS g"
            ),
            {"cap": customers},
        )
        await s.execute(text(GENERATE), {"m": leaving, "n": customers})
        await s.execute(text("ANALYZE"))

    started = time.perf_counter()
    async with session_scope(factory) as s:
        h = await planning.create_handover(
            s,
            data=HandoverCreate(from_manager_id=leaving, reason="departure"),
            actor="bench",
        )
    created = time.perf_counter() - started
    started = time.perf_counter()
    async with session_scope(factory) as s:
        await planning.plan_handover(s, handover_id=h.id, actor="bench")
    planned = time.perf_counter() - started
    async with session_scope(factory) as s:
        await lifecycle.approve_handover(s, handover_id=h.id, data=ActionIn(), actor="bench")
        rows = (
            await s.execute(
                text(
                    "SELECT customer_id, proposed_manager_id FROM handover_items "
                    "WHERE handover_id = :h ORDER BY customer_id"
                ),
                {"h": h.id},
            )
        ).all()
    ids = [r[0] for r in rows]
    targets = [r[1] for r in rows]

    handover_times: list[float] = []
    baseline_times: list[float] = []
    for _ in range(rounds):
        async with factory() as s:
            t0 = time.perf_counter()
            out = await lifecycle.execute_handover(s, handover_id=h.id, actor="bench")
            handover_times.append(time.perf_counter() - t0)
            assert out.counts.get("moved", 0) + out.counts.get("pooled", 0) == customers
            await s.rollback()
        async with factory() as s:
            params = {"ids": ids, "ms": targets, "at": out.completed_at, "h": h.id}
            t0 = time.perf_counter()
            for statement in BASELINE:
                await s.execute(text(statement), params)
            baseline_times.append(time.perf_counter() - t0)
            await s.rollback()
    await engine.dispose()

    handover = statistics.median(handover_times)
    baseline = statistics.median(baseline_times)
    print(f"customers               {customers}")
    print(f"create (items)          {created * 1000:8.1f} ms")
    print(f"plan (engine + write)   {planned * 1000:8.1f} ms")
    print(f"execute handover        {handover * 1000:8.1f} ms  (median of {rounds})")
    print(f"raw SQL baseline        {baseline * 1000:8.1f} ms  (median of {rounds})")
    print(f"ratio                   {handover / baseline:8.2f}x  (target <= 2x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.rounds))
