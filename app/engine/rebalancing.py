"""The entry point for evening out workloads: `rebalance`.

Moves as few customers as it can: from the most over-loaded manager, the heaviest customer that
does not overshoot what must be shed (else the lightest), to the best-scoring eligible manager
that stays within the target. Pinned customers and customers moved within
`min_days_since_move` never move. Moves only ever go to managers that end below the current
peak, so the peak never rises.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.engine.classes import build_classes, class_eligibility
from app.engine.columns import NO_TIME, to_epoch
from app.engine.facts import Manager, Tier
from app.engine.options import RebalanceOptions
from app.engine.plan import KEEP, Outcome, Plan
from app.engine.problem import Customers, Problem, prepare
from app.engine.rules import RuleSet


class _Portfolios:
    """Movable customers per owner, by weight then customer id."""

    def __init__(self, problem: Problem, movable_rows: np.ndarray) -> None:
        self.problem = problem
        self.by_owner: dict[int, dict[int, list[int]]] = {}
        owners = problem.owner[movable_rows]
        weights = problem.weight[movable_rows]
        order = np.lexsort((np.arange(len(movable_rows)), weights, owners))
        for row, owner, weight in zip(
            movable_rows[order].tolist(),
            owners[order].tolist(),
            weights[order].tolist(),
            strict=True,
        ):
            self.by_owner.setdefault(owner, {}).setdefault(weight, []).append(row)

    def pick(self, owner: int, need: float, *, lightest: bool) -> int | None:
        """A customer of `owner` to move (removed from the portfolio), or None."""
        groups = self.by_owner.get(owner)
        if not groups:
            return None
        weights = sorted(w for w, rows in groups.items() if rows)
        if not weights:
            return None
        if lightest:
            weight = weights[0]
        else:
            fitting = [w for w in weights if w <= need]
            weight = fitting[-1] if fitting else weights[0]
        return groups[weight].pop(0)

    def has_any(self, owner: int) -> bool:
        return any(self.by_owner.get(owner, {}).values())


def rebalance(
    customers: Customers,
    managers: Sequence[Manager],
    tiers: Sequence[Tier],
    rules: RuleSet,
    options: RebalanceOptions,
) -> Plan:
    """Bring every manager to at most `target_utilization` (and spread to `max_spread`, best
    effort) with as few moves as possible. Input: all active customers with their owners."""
    problem = prepare(customers, managers, tiers, rules, options.exclude_manager_ids)
    cols = problem.cols
    n = len(cols)
    outcome = Outcome.empty(n)
    cutoff = to_epoch(options.now) - options.min_days_since_move * 86_400
    recent = (cols.last_moved_at != NO_TIME) & (cols.last_moved_at > cutoff)
    owner = problem.owner
    known = owner >= 0
    everyone = np.arange(n)
    outcome.set(everyone[known], owner[known], ("unchanged",))
    outcome.set(everyone[~known & (cols.owner >= 0)], KEEP, ("unchanged",))
    outcome.set(everyone[cols.owner < 0], -1, ("unchanged",))
    outcome.set(
        everyone[recent & ~cols.pinned], outcome.to[recent & ~cols.pinned], ("recently_moved",)
    )
    outcome.set(everyone[cols.pinned], outcome.to[cols.pinned], ("pinned",))
    movable = ~cols.pinned & ~recent & known

    load = problem.workload.astype(np.int64).copy()
    cap = problem.capacity
    capf = np.where(cap > 0, cap, 1).astype(np.float64)
    counted = problem.active & (cap > 0)
    order = problem.customer_ids_sorted()
    movable_rows = order[movable[order]]
    classes = build_classes(problem, movable_rows)
    class_of = np.full(n, -1, np.int64)
    for c in range(len(classes)):
        class_of[classes.members(c)] = c
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    portfolios = _Portfolios(problem, movable_rows)
    penalty = options.utilization_penalty

    def destination(row: int, ceiling: float) -> int | None:
        c = int(class_of[row])
        if c not in cache:
            cache[c] = class_eligibility(problem, classes, c)
        ok, pref = cache[c]
        w = int(problem.weight[row])
        util = (load + w) / capf
        fits = (
            ok
            & (load + w <= cap)
            & (util <= ceiling + 1e-12)
            & (np.arange(len(load)) != owner[row])
        )
        if not fits.any():
            return None
        score = np.where(fits, pref - penalty * util, -np.inf)
        return int(np.argmax(score))

    def move(row: int, dest: int, reason: str) -> None:
        w = int(problem.weight[row])
        load[owner[row]] -= w
        load[dest] += w
        score = float(cache[int(class_of[row])][1][dest] - penalty * load[dest] / capf[dest])
        outcome.set(row, dest, (reason,), score)

    # Phase 1: everyone to at most the target.
    target = options.target_utilization
    stuck: set[int] = set()
    while True:
        over = counted & (load > target * cap)
        util = np.where(over, load / capf, -np.inf)
        for m in stuck:
            util[m] = -np.inf
        if not np.isfinite(util).any():
            break
        src = int(np.argmax(util))
        need = float(load[src] - target * cap[src])
        row = portfolios.pick(src, need, lightest=False)
        while row is not None:
            dest = destination(row, target)
            if dest is not None:
                move(row, dest, "rebalance_over_target")
                break
            row = portfolios.pick(src, need, lightest=False)
        if row is None:
            stuck.add(src)

    # Phase 2 (best effort): narrow the spread by moving light customers off the top.
    if options.max_spread is not None:
        stuck = set()
        for _ in range(int(movable.sum()) if counted.any() else 0):
            util = np.where(counted, load / capf, np.nan)
            if np.nanmax(util) - np.nanmin(util) <= options.max_spread + 1e-12:
                break
            candidates = np.where(counted, util, -np.inf)
            for m in stuck:
                candidates[m] = -np.inf
            if not np.isfinite(candidates).any():
                break
            src = int(np.argmax(candidates))
            top = float(util[src])
            row = portfolios.pick(src, 0.0, lightest=True)
            moved = False
            while row is not None:
                # strictly below the source's current utilization: the peak cannot rise
                dest = destination(row, top - 1e-9)
                if dest is not None and (load[dest] + problem.weight[row]) / capf[dest] < top:
                    move(row, dest, "rebalance_spread")
                    moved = True
                    break
                row = portfolios.pick(src, 0.0, lightest=True)
            if not moved:
                stuck.add(src)

    return Plan(
        strategy="rebalance",
        problem=problem,
        outcome=outcome,
        load_before_plan=problem.workload.astype(np.int64).copy(),
        load_after=load,
        explain=options.explain,
        penalty=penalty,
    )
