"""Benchmark: a full rebalance of a book through the service (read the book, plan, write the
moves and ledger) in one transaction, with the share of each step; on today's schema and, in
turns in the same run, on the schema before migration 0017 (per-row foreign keys on the
owners and the ledger). Each run is rolled back, so every run moves the same book.

    python -m bench.rebalance            # 1M customers × 10k managers
    python -m bench.rebalance --quick    # 100k × 1k
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import engine as engine_module
from app.assignments import columnar, service
from app.assignments.schemas import RebalanceRequest
from bench._db import scratch_database
from bench.apply import BEFORE_0017


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
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    customers, managers = (100_000, 1_000) if args.quick else (1_000_000, 10_000)
    _, engine = await scratch_database(customers=customers, managers=managers)
    steps: dict[str, float] = {}
    _timed(columnar, "load_owned_customer_columns", steps)
    _timed(engine_module, "rebalance", steps)
    _timed(service, "move_customers", steps)
    schemas = {"today": (), "before 0017": BEFORE_0017}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in schemas}
    for _ in range(args.repeat):
        for name, schema in schemas.items():
            async with AsyncSession(engine) as session:
                for statement in schema:
                    await session.execute(text(statement))
                steps.clear()
                started = time.perf_counter()
                plan = await service.rebalance(
                    session,
                    request=RebalanceRequest(
                        dry_run=False, target_utilization=0.9, explain="none", decisions_limit=0
                    ),
                    actor="bench",
                )
                await session.flush()
                runs[name].append({"total": time.perf_counter() - started, **steps})
                await session.rollback()
    print(
        f"rebalance {customers:,} customers × {managers:,} managers (medians of {args.repeat}): "
        f"{plan.moved:,} moved, peak utilization {plan.metrics.peak_utilization:.3f}"
    )
    for name, timings in runs.items():
        median = {k: statistics.median(t[k] for t in timings) for k in timings[0]}
        print(
            f"  {name}: {median.pop('total'):.2f} s in all (target ≤ 25 s) · "
            + " · ".join(f"{k} {v:.2f} s" for k, v in median.items())
        )
    today = statistics.median(t["move_customers"] for t in runs["today"])
    before = statistics.median(t["move_customers"] for t in runs["before 0017"])
    print(f"  move_customers today / before 0017: {today / before:.2f}×")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
