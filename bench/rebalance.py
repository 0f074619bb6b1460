"""Benchmark: a full rebalance of a book through the service (read the book, plan, write the
moves and ledger) in one transaction, with the share of each step.

    python -m bench.rebalance            # 1M customers × 10k managers
    python -m bench.rebalance --quick    # 100k × 1k
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncSession

from app import engine as engine_module
from app.assignments import columnar, service
from app.assignments.schemas import RebalanceRequest
from bench._db import scratch_database


def _timed(module, name, bucket):
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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    customers, managers = (100_000, 1_000) if args.quick else (1_000_000, 10_000)
    _, engine = await scratch_database(customers=customers, managers=managers)
    steps: dict[str, float] = {}
    _timed(columnar, "load_owned_customer_columns", steps)
    _timed(engine_module, "rebalance", steps)
    _timed(service, "move_customers", steps)
    async with AsyncSession(engine) as session:
        started = time.perf_counter()
        plan = await service.rebalance(
            session,
            request=RebalanceRequest(
                dry_run=False, target_utilization=0.9, explain="none", decisions_limit=0
            ),
            actor="bench",
        )
        await session.commit()
        total = time.perf_counter() - started
    print(
        f"rebalance {customers:,} customers × {managers:,} managers: {total:.2f} s in all "
        f"(target ≤ 25 s), {plan.moved:,} moved, peak utilization "
        f"{plan.metrics.peak_utilization:.3f}"
    )
    for name, seconds in steps.items():
        print(f"  {name:32} {seconds:6.2f} s")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
