"""Benchmark: previewing and activating a re-division of a whole book, each against its floor
measured in the same run.

The scenario touches every manager (a new region split and 10 % more capacity each), moves
one region's customers into another, and puts in force a rule set where strategic and key
customers need a manager of their own region, so roughly a fifth of the book breaks a rule.

- Preview floor: what any preview must do at least: load the book as engine columns (the
  same loader a rebalance uses) and the engine's plan for the customers that break a rule
  under the same changed facts (found outside the timing).
- Activation floor: the bare set-based statements it needs, in one transaction rolled
  back: select the customers the filter names, update the managers (one statement over
  arrays), update those customers, and the three ledger statements of the moves (update
  owners, close the open rows, open the new ones). A second floor adds the binary COPY of
  the book, which an activation re-reads to prove nothing changed since the preview. Bulk
  writes leave tables slower for the next one, so the floors are measured before and after
  the activation (vacuumed in between) and the activation is set against their mean.

    python -m bench.scenarios                       # 1M customers × 10k managers
    python -m bench.scenarios --customers 200000 --managers 2000
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import engine as engine_module
from app.assignments import columnar, loading
from app.rules.service import validate_rules
from app.scenarios import planning, service
from app.scenarios.schemas import PreviewOptions, ScenarioChanges, ScenarioCreate
from bench._db import scratch_database

RULES = {
    "eligibility": [
        {
            "id": "same_region_for_top_tiers",
            "when": [{"field": "customer.tier", "op": "in", "value": ["strategic", "key"]}],
            "conditions": [{"field": "manager.region", "op": "eq", "value": "$customer.region"}],
        }
    ]
}

FLOOR_MANAGERS = """
UPDATE managers AS m SET region = u.region, capacity = u.capacity, version = m.version + 1
  FROM unnest($1::uuid[], $2::text[], $3::int4[]) AS u(id, region, capacity) WHERE m.id = u.id
"""
FLOOR_SELECT = "SELECT id FROM customers WHERE status = 'active' AND region = 'r7'"
FLOOR_CUSTOMERS = """
UPDATE customers SET region = 'r0', version = version + 1 WHERE id = ANY($1::uuid[])
"""
FLOOR_MOVE = """
UPDATE customers AS c SET manager_id = i.m FROM unnest($1::uuid[], $2::uuid[]) AS i(id, m)
 WHERE c.id = i.id
"""
FLOOR_CLOSE = """
UPDATE assignments AS a SET ended_at = now() FROM unnest($1::uuid[]) AS i(id)
 WHERE a.customer_id = i.id AND a.ended_at IS NULL
"""
FLOOR_OPEN = """
INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
SELECT i.id, i.m, now(), 'redivision', 'bench' FROM unnest($1::uuid[], $2::uuid[]) AS i(id, m)
"""


def _timed(module, name: str, bucket: dict[str, float]) -> None:
    original = getattr(module, name)

    async def run(*args, **kwargs):
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            bucket[name] = bucket.get(name, 0.0) + time.perf_counter() - started

    def run_sync(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            bucket[name] = bucket.get(name, 0.0) + time.perf_counter() - started

    setattr(module, name, run if asyncio.iscoroutinefunction(original) else run_sync)


async def _changes(engine) -> dict:
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, capacity FROM managers ORDER BY id"))).all()
    return {
        "rules": RULES,
        "managers": [
            {"manager_id": str(m), "region": f"r{i % 7}", "capacity": int(c * 1.1) + 1}
            for i, (m, c) in enumerate(rows)
        ],
        "customers": [{"filter": {"region": "r7"}, "set": {"region": "r0"}}],
    }


async def time_preview_floor(engine, changes: dict) -> tuple[float, float, int]:
    """(load, plan) seconds: the book as columns, then the engine's plan for the customers
    breaking a rule under the changed facts (found outside the timing)."""
    async with AsyncSession(engine) as session:
        started = time.perf_counter()
        tiers = await loading.load_tiers(session)
        managers = await loading.load_managers(session, workloads=False)
        cols = await columnar.load_owned_customer_columns(session, tiers=tiers, managers=managers)
        managers = columnar.with_workloads(managers, cols, tiers)
        load = time.perf_counter() - started
    rules = validate_rules(changes["rules"])
    book = planning.Book(cols, managers, tiers, rules, 0)
    changed = planning.apply_changes(book, changes, rules)
    broken = engine_module.owners_violating(
        changed.customers, changed.managers, changed.tiers, rules
    )
    rows = np.flatnonzero(broken.violating)
    subset = changed.customers.take(rows)
    started = time.perf_counter()
    engine_module.plan_assignments(
        subset,
        changed.managers,
        changed.tiers,
        rules,
        engine_module.PlanOptions(now=datetime.now(UTC), explain="basic"),
    )
    return load, time.perf_counter() - started, len(rows)


async def time_activation_floor(
    engine, changes: dict, moves: bytes, selected: list[uuid.UUID], *, copy: bool
) -> float:
    """The bare statements an activation needs, in a transaction rolled back (and vacuumed
    after, so each measurement starts from the same table state)."""
    customers, owners, _ = planning.unpack_moves(moves)
    pairs = [(c, o) for c, o in zip(customers, owners, strict=True) if o is not None]
    ids = [c for c, _ in pairs]
    targets = [o for _, o in pairs]
    managers = [uuid.UUID(m["manager_id"]) for m in changes["managers"]]
    regions = [m["region"] for m in changes["managers"]]
    capacities = [m["capacity"] for m in changes["managers"]]
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        tx = raw.transaction()
        await tx.start()
        started = time.perf_counter()
        if copy:
            async with AsyncSession(bind=conn) as session:
                tiers = await loading.load_tiers(session)
                facts = await loading.load_managers(session, workloads=False)
                await columnar.load_owned_customer_columns(session, tiers=tiers, managers=facts)
        await raw.fetch(FLOOR_SELECT)  # the filter's selection (its rows are `selected`)
        await raw.execute(FLOOR_MANAGERS, managers, regions, capacities)
        await raw.execute(FLOOR_CUSTOMERS, selected)
        await raw.execute(FLOOR_MOVE, ids, targets)
        await raw.execute(FLOOR_CLOSE, ids)
        await raw.execute(FLOOR_OPEN, ids, targets)
        elapsed = time.perf_counter() - started
        await tx.rollback()
    await _vacuum(engine)
    return elapsed


async def _vacuum(engine) -> None:
    """Clear the dead rows a rolled-back floor or the activation left behind."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE customers, assignments, managers, manager_loads"))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--managers", type=int, default=10_000)
    args = parser.parse_args()
    _, engine = await scratch_database(customers=args.customers, managers=args.managers)
    async with engine.begin() as conn:  # a compliant live book: every owner senior enough
        await conn.execute(text("UPDATE managers SET level = 5"))
        await conn.execute(text("ANALYZE"))
    changes = await _changes(engine)

    async with AsyncSession(engine) as session:
        created = await service.create_scenario(
            session,
            data=ScenarioCreate(
                name="region split", changes=ScenarioChanges.model_validate(changes)
            ),
            actor="bench",
        )
        await session.commit()
    load, plan, violators = await time_preview_floor(engine, changes)
    preview_steps: dict[str, float] = {}
    for module, name in (
        (service, "load_book"),
        (service.columnar, "load_owned_customer_columns"),
        (planning, "digests"),
        (planning, "apply_changes"),
        (planning, "redivide"),
        (planning.engine, "owners_violating"),
        (planning.engine, "plan_assignments"),
        (planning, "_report"),
        (service.repository, "update_fields"),
    ):
        _timed(module, name, preview_steps)
    async with AsyncSession(engine) as session:
        started = time.perf_counter()
        preview = await service.preview_scenario(
            session,
            scenario_id=created.id,
            options=PreviewOptions(decisions_limit=20),
            actor="bench",
        )
        preview_t = time.perf_counter() - started
        await session.commit()
    print(
        f"scenario over {args.customers:,} customers × {args.managers:,} managers, "
        f"{preview.managers_changed:,} managers changed, {preview.customers_changed:,} "
        f"customers changed, {violators:,} breaking a rule"
    )
    print(
        f"preview: {preview_t:.2f} s · floor {load + plan:.2f} s (load {load:.2f} + engine "
        f"plan {plan:.2f}) · ratio {preview_t / (load + plan):.2f}× (target ≤ 1.5×) · "
        f"{preview.moves:,} moves, {preview.violations_left:,} left"
    )

    for name, seconds in preview_steps.items():
        print(f"  {name:28} {seconds:6.2f} s")
    async with AsyncSession(engine) as session:
        moves = (
            await session.execute(
                text("SELECT preview_moves FROM scenarios WHERE id = :id"), {"id": created.id}
            )
        ).scalar_one()
    async with engine.connect() as conn:
        selected = list((await conn.execute(text(FLOOR_SELECT))).scalars())
    # Tables grow slower with every bulk write, rolled back or not: the floors are measured
    # before and after the activation, and the activation is set against their mean.
    floor = [await time_activation_floor(engine, changes, moves, selected, copy=False)]
    floor_read = [await time_activation_floor(engine, changes, moves, selected, copy=True)]
    steps: dict[str, float] = {}
    for module, name in (
        (service, "lock_placements"),
        (service.repository, "select_customers"),
        (service.repository, "lock_customers"),
        (service, "load_book"),
        (service.managers, "update_managers"),
        (service.customers, "update_customers"),
        (service, "move_customers"),
        (service.compliance, "record"),
    ):
        _timed(module, name, steps)
    async with AsyncSession(engine) as session:
        started = time.perf_counter()
        activated = await service.activate_scenario(session, scenario_id=created.id, actor="bench")
        await session.commit()
        activate_t = time.perf_counter() - started
    assert activated.activation is not None
    await _vacuum(engine)
    floor.append(await time_activation_floor(engine, changes, moves, selected, copy=False))
    floor_read.append(await time_activation_floor(engine, changes, moves, selected, copy=True))
    f, fr = sum(floor) / 2, sum(floor_read) / 2
    print(
        f"activation: {activate_t:.2f} s · bare statements {f:.2f} s (before {floor[0]:.2f}, "
        f"after {floor[1]:.2f}; ratio {activate_t / f:.2f}×, target ≤ 1.5×) · with the book "
        f"re-read {fr:.2f} s (before {floor_read[0]:.2f}, after {floor_read[1]:.2f}; ratio "
        f"{activate_t / fr:.2f}×) · {activated.activation['moves']:,} moves, "
        f"{activated.activation['violations_recorded']:,} violations recorded"
    )
    for name, seconds in steps.items():
        print(f"  {name:28} {seconds:6.2f} s")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
