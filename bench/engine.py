"""Benchmark of the assignment engine (prints figures; not a test).

    .venv/bin/python bench/engine.py            # 10k×100, 100k×1k, 1M×10k
    .venv/bin/python bench/engine.py --quick    # 10k×100 only

Customers: 4 tiers (strategic/key/standard/long_tail, weights 8/4/2/1, min levels 4/3/2/1,
5/15/40/40 %), random regions and languages, all in the pool. Managers: random levels 1-5,
1-2 languages, capacities 0.5-1.5× a base sized so demand is 85 % of capacity. Each size runs
twice: with the tier levels only (nested eligibility) and with one more hard rule ("the manager
speaks the customer's language") that makes eligibility non-nested. The lower bound is the LP
optimum (HiGHS interior point) over (tier × language) classes.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import uuid
from datetime import UTC, datetime

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from app.engine import (
    NO_TIME,
    CustomerColumns,
    Manager,
    PlanOptions,
    RebalanceOptions,
    RuleSet,
    Tier,
    plan_assignments,
    rebalance,
)

TIERS = [
    Tier("strategic", 1, 8, 4),
    Tier("key", 2, 4, 3),
    Tier("standard", 3, 2, 2),
    Tier("long_tail", 4, 1, 1),
]
SHARES = [0.05, 0.15, 0.40, 0.40]
LANGUAGES = ("de", "en", "es", "fr", "it")
REGIONS = ("APAC", "EU", "LATAM", "NA")
TIERS_ONLY = RuleSet()
LANGUAGE_RULE = RuleSet.model_validate(
    {
        "eligibility": [
            {
                "id": "speaks_language",
                "conditions": [
                    {"field": "manager.languages", "op": "contains", "value": "$customer.language"}
                ],
            }
        ]
    }
)
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def make(n_customers: int, n_managers: int, seed: int = 7) -> tuple[CustomerColumns, list]:
    rng = np.random.default_rng(seed)
    ids = np.sort(np.frombuffer(rng.bytes(16 * n_customers), dtype="S16"))
    tier = rng.choice(4, size=n_customers, p=SHARES).astype(np.int16)
    cols = CustomerColumns(
        ids=ids,
        tier=tier,
        tier_codes=tuple(t.code for t in TIERS),
        region=rng.integers(0, len(REGIONS), n_customers).astype(np.int32),
        regions=REGIONS,
        language=rng.integers(0, len(LANGUAGES), n_customers).astype(np.int32),
        languages=LANGUAGES,
    )
    demand = int(np.array([t.weight for t in TIERS])[tier].sum())
    base = demand / (0.85 * n_managers)
    capacity = np.maximum(1, np.round(base * rng.uniform(0.5, 1.5, n_managers))).astype(int)
    capacity = np.round(capacity * demand / (0.85 * capacity.sum())).astype(int)
    managers = []
    for j in range(n_managers):
        k = 1 + int(rng.integers(0, 2))
        langs = tuple(sorted(rng.choice(LANGUAGES, size=k, replace=False).tolist()))
        managers.append(
            Manager(
                id=uuid.UUID(bytes=rng.bytes(16)),
                level=int(rng.integers(1, 6)),
                capacity=int(capacity[j]),
                workload=0,
                region=REGIONS[int(rng.integers(0, len(REGIONS)))],
                languages=langs,
            )
        )
    return cols, managers


def lp_bound(cols: CustomerColumns, managers: list[Manager], by_language: bool) -> float:
    """Minimal peak utilization of the fractional relaxation (HiGHS interior point)."""
    weight = np.array([t.weight for t in TIERS])
    min_level = np.array([t.min_manager_level for t in TIERS])
    key = cols.tier.astype(np.int64) * len(LANGUAGES) + cols.language
    counts = np.bincount(key, minlength=4 * len(LANGUAGES))
    level = np.array([m.level for m in managers])
    cap = np.array([m.capacity for m in managers], float)
    speaks = np.array(
        [[lang in m.languages or not by_language for lang in LANGUAGES] for m in managers]
    )
    pc, pm = [], []
    for c in np.flatnonzero(counts):
        t, lang = divmod(int(c), len(LANGUAGES))
        ok = np.flatnonzero((level >= min_level[t]) & speaks[:, lang])
        pc.append(np.full(len(ok), c)), pm.append(ok)
    pc, pm = np.concatenate(pc), np.concatenate(pm)
    p, r, classes = len(pc), len(managers), np.flatnonzero(counts)
    row_of = {c: i for i, c in enumerate(classes)}
    eq = coo_matrix(
        (np.ones(p), (np.array([row_of[c] for c in pc]), np.arange(p))), shape=(len(classes), p + 1)
    )
    w = weight[pc // len(LANGUAGES)].astype(float)
    ub = coo_matrix(
        (np.r_[w, -cap], (np.r_[pm, np.arange(r)], np.r_[np.arange(p), np.full(r, p)])),
        shape=(r, p + 1),
    )
    cost = np.zeros(p + 1)
    cost[-1] = 1
    res = linprog(
        cost,
        A_ub=ub.tocsr(),
        b_ub=np.zeros(r),
        A_eq=eq.tocsr(),
        b_eq=counts[classes].astype(float),
        bounds=(0, None),
        method="highs-ipm",
    )
    return float(res.x[-1])


def run(n_customers: int, n_managers: int, strategies: list[str], by_language: bool) -> None:
    cols, managers = make(n_customers, n_managers)
    rules = LANGUAGE_RULE if by_language else TIERS_ONLY
    started = time.perf_counter()
    bound = lp_bound(cols, managers, by_language)
    lp_time = time.perf_counter() - started
    label = "tier levels + language rule" if by_language else "tier levels only (nested)"
    print(
        f"\n{n_customers:,} customers × {n_managers:,} managers, {label}  "
        f"(LP lower bound on peak {bound:.4f}, {lp_time:.2f} s)"
    )
    print(
        f"  {'strategy':<12} {'time':>9} {'peak':>8} {'vs LP':>8} {'spread':>8} {'pooled':>7} "
        f"{'peak mem':>10}  notes"
    )
    for strategy in strategies:
        options = PlanOptions(strategy=strategy, now=NOW, explain="none")
        started = time.perf_counter()
        plan = plan_assignments(cols, managers, TIERS, rules, options)
        elapsed = time.perf_counter() - started
        tracemalloc.start()
        plan_assignments(cols, managers, TIERS, rules, options)
        _, peak_mem = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        m = plan.metrics
        notes = ""
        if strategy == "optimal":
            notes = f"solver={m.solver} proven={m.proven_optimal} own bound={m.lower_bound:.4f}"
        print(
            f"  {strategy:<12} {elapsed * 1000:>7.0f}ms {m.peak_utilization:>8.4f} "
            f"{(m.peak_utilization - bound) * 100:>+6.2f}pp {m.utilization_spread:>8.4f} "
            f"{m.pooled:>7} {peak_mem / 2**20:>7.1f}MiB  {notes}"
        )


INDUSTRIES = ("energy", "finance", "health", "media", "retail", "tech")


def make_owned(n_customers: int, n_managers: int, seed: int = 11) -> tuple[CustomerColumns, list]:
    """A book as the service loads it for a rebalance: every customer owned by a manager of a
    high enough level, loads uneven (each manager filled towards 0.6-1.4× its fair share), 2 %
    pinned, moves spread over the last two years (~11 % inside the 90-day guard)."""
    cols, managers = make(n_customers, n_managers, seed)
    rng = np.random.default_rng(seed + 1)
    level = np.array([m.level for m in managers])
    cap = np.array([m.capacity for m in managers], float)
    share = 0.85 * cap * rng.uniform(0.6, 1.4, n_managers)
    owner = np.empty(n_customers, np.int32)
    load = np.zeros(n_managers)
    for t, tier in enumerate(TIERS):
        rows = np.flatnonzero(cols.tier == t)
        ok = np.flatnonzero(level >= tier.min_manager_level)
        room = np.maximum(share[ok] - load[ok], 1e-3)
        owner[rows] = rng.choice(ok, size=len(rows), p=room / room.sum())
        load += np.bincount(owner[rows], minlength=n_managers) * tier.weight
    weight = np.array([t.weight for t in TIERS])[cols.tier]
    workload = np.bincount(owner, weights=weight, minlength=n_managers).astype(int)
    now = int(NOW.timestamp())
    moved = now - rng.integers(0, 730 * 86_400, n_customers)
    moved[rng.random(n_customers) < 0.1] = NO_TIME
    owned = CustomerColumns(
        ids=cols.ids,
        tier=cols.tier,
        tier_codes=cols.tier_codes,
        region=cols.region,
        regions=cols.regions,
        language=cols.language,
        languages=cols.languages,
        industry=rng.integers(-1, len(INDUSTRIES), n_customers).astype(np.int32),
        industries=INDUSTRIES,
        pinned=rng.random(n_customers) < 0.02,
        owner=owner,
        owner_ids=tuple(m.id for m in managers),
        last_moved_at=moved,
    )
    staffed = []
    for j, m in enumerate(managers):
        k = 1 + int(rng.integers(0, 2))
        industries = tuple(sorted(rng.choice(INDUSTRIES, size=k, replace=False).tolist()))
        staffed.append(
            Manager(
                id=m.id,
                level=m.level,
                capacity=m.capacity,
                workload=int(workload[j]),
                region=m.region,
                languages=m.languages,
                industries=industries,
            )
        )
    return owned, staffed


def run_rebalance(n_customers: int, n_managers: int, target: float = 0.9) -> None:
    cols, managers = make_owned(n_customers, n_managers)
    cap = np.array([m.capacity for m in managers], float)
    util = np.array([m.workload for m in managers]) / cap
    print(
        f"\nrebalance {n_customers:,} customers × {n_managers:,} managers, default rules, "
        f"target {target}  (before: peak {util.max():.4f}, {int((util > target).sum())} managers "
        f"over target)"
    )
    options = RebalanceOptions(now=NOW, target_utilization=target, explain="none")
    rules = RuleSet.default()
    started = time.perf_counter()
    plan = rebalance(cols, managers, TIERS, rules, options)
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    rebalance(cols, managers, TIERS, rules, options)
    _, peak_mem = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    m = plan.metrics
    after = np.array([x.workload_after for x in plan.managers]) / cap
    print(
        f"  {'time':>9} {'peak':>8} {'spread':>8} {'moved':>8} {'over target':>12} {'peak mem':>10}"
    )
    print(
        f"  {elapsed * 1000:>7.0f}ms {m.peak_utilization:>8.4f} {m.utilization_spread:>8.4f} "
        f"{m.moved:>8} {int((after > target + 1e-9).sum()):>12} {peak_mem / 2**20:>7.1f}MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 10k customers × 100 managers")
    parser.add_argument("--only", choices=["plan", "rebalance"], help="run one part only")
    args = parser.parse_args()
    strategies = ["balanced", "optimal", "round_robin"]
    sizes = (
        [(10_000, 100)] if args.quick else [(10_000, 100), (100_000, 1_000), (1_000_000, 10_000)]
    )
    for n_customers, n_managers in sizes:
        if args.only != "rebalance":
            for by_language in (False, True):
                run(n_customers, n_managers, strategies, by_language)
        if args.only != "plan":
            run_rebalance(n_customers, n_managers)


if __name__ == "__main__":
    main()
