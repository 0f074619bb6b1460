"""Single-customer placement (``POST /v1/customers/{id}/assign``).

1. CPU per placement: the pure single-customer placement (``engine.single``) against the full
   engine (``plan_assignments`` of one customer) on the same facts, interleaved; and the whole
   service call (dry run) against the same call through the full engine over every manager
   (what ``assign`` did before the single-customer placement), interleaved. Process CPU time
   (this process only: Postgres is another), medians, ratios.
2. Intake caps (the managers' and the tiers'), working hours and weighted round robin with its
   counters, against the same placement without them (``balanced``, default rule set), same
   run, same data; and ``balanced`` under the same tier caps.

    .venv/bin/python -m bench.placement [--managers 1000] [--customers 100000] [--rounds 60]

Half the managers have intake caps with recent ledger placements to count, a fifth have
working hours, weights vary; the capped run's rule set caps two tiers, asks for managers
available now and keeps rotation counters per week. Each placement is written and rolled
back, the two kinds alternate, and the medians are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import UTC, datetime

from sqlalchemy import text

from app import engine as baton_engine
from app.assignments import loading, service
from app.assignments.schemas import AssignRequest
from app.db.session import create_session_factory
from app.engine import RuleSet
from app.engine.single import place_customer
from app.vocabulary import Strategy
from bench._db import scratch_database

SETUP = [
    """UPDATE managers SET max_new_per_day = CASE WHEN random() < 0.5 THEN 1000 END,
                          max_new_per_week = CASE WHEN random() < 0.25 THEN 5000 END,
                          rotation_weight = 1 + (random() * 2)::int""",
    """UPDATE managers SET time_zone = 'Asia/Shanghai',
              working_hours = '[{"days": ["mon","tue","wed","thu","fri","sat","sun"],
                                 "start": "00:00", "end": "24:00"}]'
        WHERE random() < 0.2""",
    """INSERT INTO assignments (customer_id, manager_id, started_at, ended_at, reason, actor)
       SELECT c.id, c.manager_id, now() - interval '2 minutes' - (random() * interval '6 days'),
              now() - interval '1 minute', 'auto', 'bench'
         FROM customers AS c WHERE random() < 0.05""",
    """INSERT INTO customers (name, tier_code, region, language, industry)
       SELECT 'Waiting ' || g, CASE WHEN g % 2 = 0 THEN 'standard' ELSE 'key' END,
              'r' || g % 8, 'zh', 'i' || g % 6
         FROM generate_series(1, :waiting) AS g""",
    "ANALYZE",
]

ROTATION_RULES = RuleSet.default().model_dump(mode="json") | {
    "placement": {"rotation_period": "week", "available_now": True}
}
BALANCED_CAPPED_RULES = RuleSet.default().model_dump(mode="json") | {
    "placement": {
        "available_now": True,
        "tier_caps": {
            "standard": {"max_new_per_day": 500, "max_new_per_week": 2000},
            "key": {"max_new_per_day": 300},
        },
    }
}
CAPPED_RULES = RuleSet.default().model_dump(mode="json") | {
    "placement": {
        "rotation_period": "week",
        "available_now": True,
        "tier_caps": {
            "standard": {"max_new_per_day": 500, "max_new_per_week": 2000},
            "key": {"max_new_per_day": 300},
        },
    }
}


async def main(managers: int, customers: int, rounds: int) -> None:
    _, engine = await scratch_database(customers, managers)
    factory = create_session_factory(engine)
    async with factory() as s:
        for statement in SETUP:
            await s.execute(text(statement.replace(":waiting", str(rounds * 3))))
        await s.commit()
        waiting = list(
            (
                await s.scalars(
                    text("SELECT id FROM customers WHERE manager_id IS NULL ORDER BY id")
                )
            ).all()
        )

    async def place(customer_id, *, rules: dict | None, strategy: str = "") -> float:
        async with factory() as s:
            if rules is not None:
                await s.execute(
                    text(
                        "INSERT INTO rule_sets (version, rules, created_by) "
                        "VALUES (1, CAST(:rules AS jsonb), 'bench')"
                    ),
                    {"rules": json.dumps(rules)},
                )
            strategy = strategy or ("balanced" if rules is None else "weighted_round_robin")
            request = AssignRequest(strategy=strategy, explain="none")
            started = time.perf_counter()
            out = await service.assign_customer(
                s, customer_id=customer_id, request=request, actor="bench"
            )
            elapsed = time.perf_counter() - started
            assert out.decision.manager_id is not None, out.decision
            await s.rollback()
            return elapsed

    await cpu_per_placement(factory, waiting, rounds)
    kinds = {
        "floor": (None, ""),
        "rotation": (ROTATION_RULES, ""),
        "tier_caps": (CAPPED_RULES, ""),
        "balanced_caps": (BALANCED_CAPPED_RULES, "balanced"),
    }
    for customer_id in waiting[:4]:  # warm up every path
        for rules, strategy in kinds.values():
            await place(customer_id, rules=rules, strategy=strategy)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(rounds):
        for j, (kind, (rules, strategy)) in enumerate(kinds.items()):
            customer_id = waiting[(3 * i + j) % len(waiting)]
            times[kind].append(await place(customer_id, rules=rules, strategy=strategy))
    await engine.dispose()
    floor = statistics.median(times["floor"])
    rotation = statistics.median(times["rotation"])
    capped = statistics.median(times["tier_caps"])
    print(f"managers {managers:,}, customers {customers:,}, placements {rounds} of each")
    print(f"balanced, default rules (floor)          {floor * 1000:8.1f} ms  (median)")
    print(
        f"+ hours, weighted round robin + counters {rotation * 1000:8.1f} ms  "
        f"ratio {rotation / floor:.2f}x"
    )
    print(
        f"+ tier caps counted from the ledger      {capped * 1000:8.1f} ms  "
        f"ratio {capped / floor:.2f}x"
    )
    balanced_caps = statistics.median(times["balanced_caps"])
    print(
        f"balanced + hours + tier caps (single)    {balanced_caps * 1000:8.1f} ms  "
        f"ratio {balanced_caps / floor:.2f}x"
    )


async def cpu_per_placement(factory, waiting: list, rounds: int) -> None:
    """Part 1: CPU of the pure placement and of the whole service call, each against the
    full engine on the same input, interleaved."""
    async with factory() as s:
        customers = await loading.load_customers(s, waiting[:rounds])
        rules = (await service.current_rules(s)).rules
        managers = await loading.load_managers(s, rules=rules)
        tiers = await loading.load_tiers(s)
        await s.rollback()
    opts = baton_engine.PlanOptions(strategy=Strategy.BALANCED, now=datetime.now(UTC))
    pure: dict[str, list[float]] = {"engine": [], "single": []}
    for customer in customers * 3:
        started = time.process_time()
        full = baton_engine.plan_assignments([customer], managers, tiers, rules, opts).decision(0)
        pure["engine"].append(time.process_time() - started)
        started = time.process_time()
        one = place_customer(customer, managers, tiers, rules, opts)
        pure["single"].append(time.process_time() - started)
        assert one == full, (one, full)

    async def call(customer_id, *, whole_engine: bool) -> float:
        async with factory() as s:
            request = AssignRequest(dry_run=True)
            started = time.process_time()
            if whole_engine:  # the call as it was: status, then the engine over every manager
                await service.repository.customer_status(s, customer_id)
                plan, _, _ = await service._propose(
                    s,
                    customer_ids=[customer_id],
                    strategy="balanced",
                    exclude_manager_ids=frozenset(),
                    successor_id=None,
                    force=False,
                    explain="basic",
                    lock=False,
                    available_now=True,
                )
                plan.decision(0)
            else:
                await service.assign_customer(
                    s, customer_id=customer_id, request=request, actor="bench"
                )
            elapsed = time.process_time() - started
            await s.rollback()
            return elapsed

    calls: dict[str, list[float]] = {"engine": [], "single": []}
    for customer_id in waiting[:4]:
        await call(customer_id, whole_engine=True)
        await call(customer_id, whole_engine=False)
    for i in range(rounds * 2):
        customer_id = waiting[i % len(waiting)]
        calls["engine"].append(await call(customer_id, whole_engine=True))
        calls["single"].append(await call(customer_id, whole_engine=False))
    m = len(managers)
    print(f"CPU per placement, {m:,} managers (process CPU time, medians, interleaved)")
    e, o = statistics.median(pure["engine"]), statistics.median(pure["single"])
    print(f"pure: full engine (floor of comparison)   {e * 1000:8.3f} ms")
    print(f"pure: single-customer placement           {o * 1000:8.3f} ms  ratio {o / e:.3f}x")
    e, o = statistics.median(calls["engine"]), statistics.median(calls["single"])
    print(f"service call through the full engine      {e * 1000:8.3f} ms")
    print(f"service call, single-customer placement   {o * 1000:8.3f} ms  ratio {o / e:.3f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--managers", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(main(args.managers, args.customers, args.rounds))
