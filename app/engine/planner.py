"""The entry point for placing customers: `plan_assignments`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.engine.budget import budget, remaining
from app.engine.classes import build_classes
from app.engine.facts import Manager, Tier
from app.engine.optimal import run_optimal
from app.engine.options import PlanOptions
from app.engine.plan import KEEP, POOL, Outcome, Plan
from app.engine.problem import NO_CAP, Customers, Problem, prepare
from app.engine.rules import RuleSet
from app.engine.strategies import run_balanced, run_round_robin, run_successor


def release_load(problem: Problem, movable: np.ndarray) -> np.ndarray:
    """Managers' workload once the movable customers they own are taken off them."""
    load = problem.workload.astype(np.int64).copy()
    owned = movable & (problem.owner >= 0)
    np.subtract.at(load, problem.owner[owned], problem.weight[owned])
    return load


def settle_pinned(problem: Problem, outcome: Outcome, pinned: np.ndarray) -> None:
    """Pinned customers stay where they are (with an unknown owner: KEEP; none: the pool)."""
    rows = np.flatnonzero(pinned)
    owner = problem.owner[rows]
    known = owner >= 0
    outcome.set(rows[known], owner[known], ("pinned",))
    unknown = rows[~known]
    had_owner = problem.cols.owner[unknown] >= 0
    outcome.set(unknown[had_owner], KEEP, ("pinned",))
    outcome.set(unknown[~had_owner], -1, ("pinned",))


def hold_to_intake_caps(
    problem: Problem, outcome: Outcome, load: np.ndarray, rows: np.ndarray
) -> None:
    """A plan gives a capped manager at most its intake room of *new* customers: the ones
    beyond it (the last in ``rows`` order) go back to the pool with reason ``intake_cap``.

    Strategies already skip managers with no room; this bounds a plan that places several
    customers on a manager with some room left.
    """
    capped = problem.intake_room < NO_CAP
    if not capped.any() or not len(rows):
        return
    to = outcome.to[rows]
    new = (to >= 0) & (to != problem.owner[rows])
    new[new] &= capped[to[new]]
    placed, dest = rows[new], to[new]
    order = np.argsort(dest, kind="stable")
    placed, dest = placed[order], dest[order]
    nth = np.arange(len(dest)) - np.searchsorted(dest, dest, side="left")
    over = nth >= problem.intake_room[dest]
    if over.any():
        np.subtract.at(load, dest[over], problem.weight[placed[over]])
        outcome.set(placed[over], POOL, ("intake_cap",))


def plan_assignments(
    customers: Customers,
    managers: Sequence[Manager],
    tiers: Sequence[Tier],
    rules: RuleSet,
    options: PlanOptions,
) -> Plan:
    """Place every given customer on a manager, or in the pool with reasons.

    Customers currently owned by one of the given managers are up for placement: their weight
    is taken off that manager first (which stays a candidate unless excluded or not active).
    Pinned customers stay put. Accepts `Customer`s or `CustomerColumns`. Past
    `options.deadline` it stops with `OverBudget`.
    """
    with budget(options.deadline):
        return _plan(customers, managers, tiers, rules, options)


def _plan(
    customers: Customers,
    managers: Sequence[Manager],
    tiers: Sequence[Tier],
    rules: RuleSet,
    options: PlanOptions,
) -> Plan:
    problem = prepare(customers, managers, tiers, rules, options.exclude_manager_ids)
    n = len(problem.cols)
    pinned = problem.cols.pinned
    outcome = Outcome.empty(n)
    settle_pinned(problem, outcome, pinned)
    load = release_load(problem, ~pinned)
    before = load.copy()
    order = problem.customer_ids_sorted()
    rows = order[~pinned[order]]
    classes = build_classes(problem, rows)
    penalty = options.utilization_penalty
    extra: dict = {}
    rotation: dict = {}
    match options.strategy:
        case "balanced":
            run_balanced(problem, classes, outcome, load, penalty)
        case "successor":
            run_successor(
                problem, classes, outcome, load, penalty, options.successor_id, options.force
            )
            if options.successor_id is not None:  # run_successor rejects a missing one
                extra = {"successor": problem.index_of[options.successor_id]}
        case "round_robin":
            rotation = run_round_robin(
                problem, classes, outcome, load, rows, dict(options.rotation)
            )
        case "optimal":
            time_limit = remaining(options.time_limit_s)
            result = run_optimal(problem, classes, outcome, load, penalty, time_limit)
            extra = {
                "lower_bound": result.lower_bound,
                "proven_optimal": result.proven_optimal,
                "solver": result.solver,
            }
    hold_to_intake_caps(problem, outcome, load, rows)
    plan = Plan(
        strategy=options.strategy,
        problem=problem,
        outcome=outcome,
        load_before_plan=before,
        load_after=load,
        explain=options.explain,
        penalty=penalty,
        **extra,
    )
    plan.rotation = rotation
    return plan
