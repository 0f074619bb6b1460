"""The entry point for evening out workloads: `rebalance`.

Moves as few customers as it can. Phase 1, vectorised: every manager over the target sheds,
heaviest customers first, the most weight that does not overshoot what must leave, then (if
still over) its lightest movable customer; within a weight, customers with the least to lose
(lowest preference score with their current owner), then lowest id. The leavers are placed
like `balanced` (with the lookahead), on managers that stay within the target; customers no
manager can take stay and their owner sheds others instead. Pinned customers and customers moved
within `min_days_since_move` never move. Moves only ever go to managers that end at or below the
target, below every source, so the peak never rises. Phase 2 (`max_spread`, best effort)
narrows the spread one light customer at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.engine.budget import budget, checkpoint
from app.engine.classes import build_classes, class_eligibility
from app.engine.columns import NO_TIME, to_epoch
from app.engine.facts import Manager, Tier
from app.engine.options import RebalanceOptions
from app.engine.outcome import KEEP, Outcome
from app.engine.plan import OverTarget, Plan
from app.engine.problem import Customers, Problem, prepare
from app.engine.rules import RuleSet
from app.engine.strategies import run_balanced

_ROUNDS = 4
"""Shed-and-place rounds: a customer nobody can take stays, and its owner sheds others."""


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


def _continuity(problem: Problem, rows: np.ndarray) -> np.ndarray:
    """Each row's preference score with its current owner (what a move would give up)."""
    owner = problem.owner[rows]
    former = np.zeros(len(rows), bool)
    if problem.evaluator.reads_former and problem.cols.former_owners:
        position = {int(r): i for i, r in enumerate(rows)}
        for row in problem.cols.former_owners:
            i = position.get(row)
            if i is not None and int(owner[i]) in problem.former(row):
                former[i] = True
    return problem.evaluator.pair_scores(rows, owner, np.ones(len(rows), bool), former)


def _shed(problem: Problem, rows: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Rows (a subset of `rows`) to take off their owners so each sheds `need[owner]`.

    Heaviest first without overshooting, then one lightest customer if still short; within a
    weight, lowest continuity score, then the given (id) order.
    """
    if not len(rows):
        return rows
    owner = problem.owner[rows].astype(np.int64)
    weight = problem.weight[rows].astype(np.int64)
    score = _continuity(problem, rows)
    order = np.lexsort((np.arange(len(rows)), score, -weight, owner))
    rows, owner, weight = rows[order], owner[order], weight[order]
    left = need.astype(np.float64).copy()
    chosen = np.zeros(len(rows), bool)
    for w in np.unique(weight)[::-1]:
        at = np.flatnonzero(weight == w)
        o = owner[at]
        take = np.minimum(
            np.bincount(o, minlength=len(left)), np.floor(np.maximum(left, 0) / w + 1e-9)
        ).astype(np.int64)
        first = np.searchsorted(o, o, side="left")
        chosen[at[(np.arange(len(at)) - first) < take[o]]] = True
        left -= take * w
    short = left > 1e-9
    rest = np.flatnonzero(~chosen & short[owner])
    if len(rest):
        lightest = rest[np.lexsort((rest, weight[rest], owner[rest]))]
        o = owner[lightest]
        first = np.r_[True, o[1:] != o[:-1]]
        chosen[lightest[first]] = True
    return np.sort(rows[chosen])


def rebalance(
    customers: Customers,
    managers: Sequence[Manager],
    tiers: Sequence[Tier],
    rules: RuleSet,
    options: RebalanceOptions,
) -> Plan:
    """Bring every manager to at most `target_utilization` (and spread to `max_spread`, best
    effort) with as few moves as possible. Input: all active customers with their owners.
    Past `options.deadline` it stops with `OverBudget`."""
    with budget(options.deadline):
        return _rebalance(customers, managers, tiers, rules, options)


def _rebalance(
    customers: Customers,
    managers: Sequence[Manager],
    tiers: Sequence[Tier],
    rules: RuleSet,
    options: RebalanceOptions,
) -> Plan:
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
    held = (
        np.bincount(owner[known & cols.pinned], minlength=len(managers)),
        np.bincount(owner[known & recent & ~cols.pinned], minlength=len(managers)),
        np.bincount(owner[movable], minlength=len(managers)),
    )
    del everyone, recent

    load = problem.workload.astype(np.int64).copy()
    cap = problem.capacity
    counted = problem.active & (cap > 0)
    target = options.target_utilization
    penalty = options.utilization_penalty
    # Receivers stay within the target (and their capacity).
    limit = np.minimum(cap, np.floor(target * cap + 1e-9)).astype(np.int64)
    order = problem.customer_ids_sorted()
    unchanged = outcome.code(("unchanged",))
    for _ in range(_ROUNDS):
        checkpoint()
        over = counted & (load > target * cap + 1e-9)
        if not over.any():
            break
        candidates = order[movable[order] & over[np.maximum(owner[order], 0)]]
        leaving = _shed(problem, candidates, np.where(over, load - target * cap, 0.0))
        if not len(leaving):
            break
        np.subtract.at(load, owner[leaving], problem.weight[leaving])
        classes = build_classes(problem, leaving, ignore_current=True)
        # Sources receive nothing this round: customers nobody takes go back to them.
        receiving = np.where(over, 0, limit)
        run_balanced(
            problem,
            classes,
            outcome,
            load,
            penalty,
            limit=receiving,
            ceiling=target,
            reason=("rebalance_over_target",),
        )
        to = outcome.to[leaving]
        stay = leaving[(to < 0) | (to == owner[leaving])]
        # Nobody could take these (or they came back): they stay, and cannot leave again.
        np.add.at(load, owner[stay], problem.weight[stay])
        np.subtract.at(
            load,
            outcome.to[stay][outcome.to[stay] >= 0],
            problem.weight[stay][outcome.to[stay] >= 0],
        )
        outcome.to[stay] = owner[stay]
        outcome.reason[stay] = unchanged
        outcome.score[stay] = 0.0
        movable[leaving] = False

    if options.max_spread is not None:
        _narrow_spread(problem, outcome, load, movable, options.max_spread, penalty)

    return Plan(
        strategy="rebalance",
        problem=problem,
        outcome=outcome,
        load_before_plan=problem.workload.astype(np.int64).copy(),
        load_after=load,
        explain=options.explain,
        penalty=penalty,
        over_target=_over_target(problem, load, counted & (load > target * cap + 1e-9), held),
    )


def _over_target(
    problem: Problem,
    load: np.ndarray,
    over: np.ndarray,
    held: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> list[OverTarget]:
    """Managers still above the target, highest utilization first, with why (see
    ``OverTarget``); ``held`` counts each manager's pinned, recently moved and movable
    customers at the start."""
    pinned, recently_moved, movable = held
    rows = np.flatnonzero(over)
    util = load[rows] / problem.capacity[rows]
    found = []
    for m, u in sorted(zip(rows.tolist(), util.tolist(), strict=True), key=lambda r: -r[1]):
        found.append(
            OverTarget(
                manager_id=problem.managers[m].id,
                utilization_after=round(u, 4),
                reason="no_room_elsewhere" if movable[m] else "customers_held",
                pinned=int(pinned[m]),
                recently_moved=int(recently_moved[m]),
                movable=int(movable[m]),
            )
        )
    return found


def _narrow_spread(
    problem: Problem,
    outcome: Outcome,
    load: np.ndarray,
    movable: np.ndarray,
    max_spread: float,
    penalty: float,
) -> None:
    """Best effort: move light customers off the top, to managers ending strictly below it."""
    owner = problem.owner
    cap = problem.capacity
    capf = np.where(cap > 0, cap, 1).astype(np.float64)
    counted = problem.active & (cap > 0)
    if not counted.any():
        return
    order = problem.customer_ids_sorted()
    movable_rows = order[movable[order]]
    classes = build_classes(problem, movable_rows)
    class_of = np.full(len(problem.cols), -1, np.int64)
    for c in range(len(classes)):
        class_of[classes.members(c)] = c
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    portfolios = _Portfolios(problem, movable_rows)

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

    stuck: set[int] = set()
    for _ in range(len(movable_rows)):
        checkpoint()
        util = np.where(counted, load / capf, np.nan)
        if np.nanmax(util) - np.nanmin(util) <= max_spread + 1e-12:
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
                w = int(problem.weight[row])
                load[owner[row]] -= w
                load[dest] += w
                score = float(
                    cache[int(class_of[row])][1][dest] - penalty * load[dest] / capf[dest]
                )
                outcome.set(row, dest, ("rebalance_spread",), score)
                moved = True
                break
            row = portfolios.pick(src, 0.0, lightest=True)
        if not moved:
            stuck.add(src)
