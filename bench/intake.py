"""Reading the managers for a placement, with the absence and intake-cap facts, against the
same read without them, same run.

    .venv/bin/python -m bench.intake [--managers 10000] [--rounds 20]

A placement (single-customer ``assign``, a plan) loads every manager with its workload; issue
#17 adds whether each is absent now and how many new customers its intake caps still allow,
counted from the ledger. Half the managers have caps, a tenth an absence, and the ledger holds
20 recent placements per manager. The floor is the query without the two facts, building the
same engine facts; the facts are read set-based (``load_managers``) and, for comparison, the
way they were read before, a subquery per manager (the results must agree).
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

from app.assignments import loading
from app.db.migrate import upgrade
from app.db.session import create_session_factory, session_scope
from app.engine import facts as engine_facts
from bench._db import server_url

FLOOR = text(
    """
    SELECT m.id, m.level, m.capacity, COALESCE(w.workload, 0) AS workload, m.status,
           m.accepting_new, m.region, m.languages, m.industries, m.team
      FROM managers AS m
      LEFT JOIN (
            SELECT l.manager_id, SUM(l.customers * t.weight) AS workload
              FROM manager_loads AS l JOIN tiers AS t ON t.code = l.tier_code
             GROUP BY l.manager_id) AS w ON w.manager_id = m.id
     WHERE m.status <> 'departed' OR m.id = ANY(CAST(:include AS uuid[]))
     ORDER BY m.id
    """
)


# The facts as they were read before they were set-based: a subquery per manager.
PER_MANAGER = text(
    """
    SELECT m.id, m.level, m.capacity, COALESCE(w.workload, 0) AS workload, m.status,
           m.accepting_new, m.region, m.languages, m.industries, m.team,
           EXISTS (SELECT 1 FROM manager_absences AS a
                    WHERE a.manager_id = m.id AND a.cancelled_at IS NULL
                      AND a.starts_at <= now() AND a.ends_at > now()) AS absent,
           CASE WHEN m.max_new_per_day IS NULL AND m.max_new_per_week IS NULL THEN NULL
                ELSE (SELECT LEAST(m.max_new_per_day - count(*) FILTER (
                                       WHERE a.started_at > now() - interval '1 day'),
                                   m.max_new_per_week - count(*))
                        FROM assignments AS a
                       WHERE a.manager_id = m.id AND a.started_at > now() - interval '7 days'
                         AND a.reason IN ('auto', 'manual', 'import', 'webhook', 'claim'))
                END AS intake_room
      FROM managers AS m
      LEFT JOIN (
            SELECT l.manager_id, SUM(l.customers * t.weight) AS workload
              FROM manager_loads AS l JOIN tiers AS t ON t.code = l.tier_code
             GROUP BY l.manager_id) AS w ON w.manager_id = m.id
     WHERE m.status <> 'departed' OR m.id = ANY(CAST(:include AS uuid[]))
     ORDER BY m.id
    """
)


def _facts(rows, *, with_facts: bool) -> list[engine_facts.Manager]:
    return [
        engine_facts.Manager(
            id=r["id"],
            level=r["level"],
            capacity=r["capacity"],
            workload=int(r["workload"]),
            status=r["status"],
            accepting_new=r["accepting_new"],
            region=r["region"],
            languages=tuple(r["languages"]),
            industries=tuple(r["industries"]),
            team=r["team"],
            absent=r["absent"] if with_facts else False,
            intake_room=r["intake_room"] if with_facts else None,
        )
        for r in rows
    ]


async def _database() -> str:
    admin_url = server_url()
    name = f"bench_intake_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(upgrade, url)
    return url


async def main(managers: int, rounds: int) -> None:
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
                "INSERT INTO managers (name, email, level, capacity, max_new_per_day, "
                "max_new_per_week) SELECT 'M' || g, 'm' || g || '@bench.example', 3, 1000, "
                "CASE WHEN g % 2 = 0 THEN 5 END, CASE WHEN g % 4 = 0 THEN 20 END "
                "FROM generate_series(1, :n) AS g"
            ),
            {"n": managers},
        )
        await s.execute(
            text(
                "INSERT INTO manager_absences (manager_id, starts_at, ends_at, kind, created_by) "
                "SELECT id, now() - interval '1 day', now() + interval '3 days', 'leave', 'b' "
                "FROM managers WHERE random() < 0.1"
            )
        )
        await s.execute(
            text(
                """
                WITH c AS (
                    INSERT INTO customers (name, tier_code, manager_id, owner_since)
                    SELECT 'C' || g, 'standard', m.id, now() - (g % 7) * interval '1 day'
                      FROM managers AS m, generate_series(1, 20) AS g
                    RETURNING id, manager_id, owner_since)
                INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
                SELECT id, manager_id, owner_since, 'auto', 'bench' FROM c
                """
            )
        )
        await s.execute(text("ANALYZE"))

    new_times: list[float] = []
    before_times: list[float] = []
    floor_times: list[float] = []
    for _ in range(rounds):
        async with factory() as s:
            t0 = time.perf_counter()
            facts = await loading.load_managers(s)
            new_times.append(time.perf_counter() - t0)
            await s.rollback()
        async with factory() as s:
            t0 = time.perf_counter()
            before = _facts(
                (await s.execute(PER_MANAGER, {"include": []})).mappings().all(), with_facts=True
            )
            before_times.append(time.perf_counter() - t0)
            await s.rollback()
        async with factory() as s:
            t0 = time.perf_counter()
            rows = _facts(
                (await s.execute(FLOOR, {"include": []})).mappings().all(), with_facts=False
            )
            floor_times.append(time.perf_counter() - t0)
            await s.rollback()
    assert [(m.absent, m.intake_room) for m in facts] == [(m.absent, m.intake_room) for m in before]
    assert len(facts) == len(rows) == managers
    await engine.dispose()
    absent = sum(m.absent for m in facts)
    capped = sum(m.intake_room is not None for m in facts)
    new = statistics.median(new_times)
    old = statistics.median(before_times)
    floor = statistics.median(floor_times)
    print(f"managers                      {managers} ({absent} absent, {capped} capped)")
    print(f"without the facts (floor)     {floor * 1000:8.1f} ms  (median of {rounds})")
    print(f"subquery per manager (before) {old * 1000:8.1f} ms  ratio {old / floor:.2f}x")
    print(f"set-based (load_managers)     {new * 1000:8.1f} ms  ratio {new / floor:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--managers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.managers, args.rounds))
