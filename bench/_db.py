"""Shared set-up for benchmarks: a migrated scratch database on the embedded server (or
BENCH_DATABASE_URL) and fast SQL-generated portfolios."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db.migrate import upgrade

GENERATE = """
INSERT INTO tiers (code, name, rank, weight, min_manager_level) VALUES
  ('strategic', 'Strategic', 1, 8, 4), ('key', 'Key', 2, 4, 3),
  ('standard', 'Standard', 3, 2, 2), ('long_tail', 'Long tail', 4, 1, 1);
INSERT INTO managers (id, name, email, level, capacity, region, languages, team)
SELECT gen_random_uuid(), 'Manager ' || g, 'm' || g || '@bench.example', 1 + g % 5,
       (:capacity * (0.5 + random()))::int, 'r' || g % 8, ARRAY['zh', 'en'], 't' || g % 50
  FROM generate_series(1, :managers) AS g;
CREATE TEMP TABLE bench_m AS
SELECT id, level, row_number() OVER (ORDER BY id) - 1 AS n FROM managers;
INSERT INTO customers (id, name, tier_code, region, language, industry, manager_id, owner_since)
SELECT gen_random_uuid(), 'Customer ' || g,
       CASE WHEN g % 20 = 0 THEN 'strategic' WHEN g % 20 < 4 THEN 'key'
            WHEN g % 20 < 12 THEN 'standard' ELSE 'long_tail' END,
       'r' || g % 8, CASE WHEN g % 3 = 0 THEN 'en' ELSE 'zh' END, 'i' || g % 6,
       m.id, now() - interval '200 days'
  FROM generate_series(1, :customers) AS g JOIN bench_m AS m ON m.n = g % :managers;
INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
SELECT id, manager_id, now() - interval '200 days', 'seed', 'bench' FROM customers;
ANALYZE;
"""


def server_url() -> str:
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return make_url(explicit).set(drivername="postgresql+asyncpg").render_as_string(False)
    from app.db.embedded import start_embedded_postgres

    return start_embedded_postgres(
        Path(tempfile.mkdtemp(prefix="baton-bench-")) / "pgdata",
        database="postgres",
        throwaway=True,
    )


async def scratch_database(customers: int, managers: int) -> tuple[str, AsyncEngine]:
    """A new migrated database filled with a generated portfolio; returns (url, engine)."""
    admin_url = server_url()
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(upgrade, url)
    engine = create_async_engine(url, pool_size=4)
    started = time.perf_counter()
    capacity = max(4, int(customers * 2.5 / managers / 0.85))
    async with engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        for statement in GENERATE.split(";\n"):
            if statement.strip():
                sql = (
                    statement.replace(":customers", str(customers))
                    .replace(":managers", str(managers))
                    .replace(":capacity", str(capacity))
                )
                await raw.execute(sql)
    print(
        f"generated {customers:,} customers × {managers:,} managers "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return url, engine
