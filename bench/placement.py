"""Single-customer placement (``POST /v1/customers/{id}/assign``) with intake caps (the
managers' and the tiers'), working hours and weighted round robin with its counters, against
the same placement without them (``balanced``, default rule set), same run, same data.

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

from sqlalchemy import text

from app.assignments import service
from app.assignments.schemas import AssignRequest
from app.db.session import create_session_factory
from app.engine import RuleSet
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

    async def place(customer_id, *, rules: dict | None) -> float:
        async with factory() as s:
            if rules is not None:
                await s.execute(
                    text(
                        "INSERT INTO rule_sets (version, rules, created_by) "
                        "VALUES (1, CAST(:rules AS jsonb), 'bench')"
                    ),
                    {"rules": json.dumps(rules)},
                )
            request = AssignRequest(
                strategy="balanced" if rules is None else "weighted_round_robin", explain="none"
            )
            started = time.perf_counter()
            out = await service.assign_customer(
                s, customer_id=customer_id, request=request, actor="bench"
            )
            elapsed = time.perf_counter() - started
            assert out.decision.manager_id is not None, out.decision
            await s.rollback()
            return elapsed

    kinds = {"floor": None, "rotation": ROTATION_RULES, "tier_caps": CAPPED_RULES}
    for customer_id in waiting[:4]:  # warm up every path
        for rules in kinds.values():
            await place(customer_id, rules=rules)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(rounds):
        for j, (kind, rules) in enumerate(kinds.items()):
            times[kind].append(await place(waiting[(3 * i + j) % len(waiting)], rules=rules))
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--managers", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(main(args.managers, args.customers, args.rounds))
