"""The entry point for placing customers: `plan_assignments`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.engine.budget import budget
from app.engine.classes import Classes, build_classes, class_eligibility
from app.engine.facts import Manager, Tier
from app.engine.optimal import run_optimal
from app.engine.options import PlanOptions
from app.engine.outcome import KEEP, POOL, Outcome
from app.engine.plan import Plan
from app.engine.problem import NO_CAP, Customers, Problem, prepare
from app.engine.rules import RuleSet
from app.engine.strategies import (
    NO_CAPACITY,
    NO_ELIGIBLE,
    run_balanced,
    run_round_robin,
    run_successor,
    run_weighted_round_robin,
)


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
    _hold_to_tier_caps(problem, outcome, load, rows)
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


def _hold_to_tier_caps(
    problem: Problem, outcome: Outcome, load: np.ndarray, rows: np.ndarray
) -> None:
    """The same bound per (manager, tier) under the rule set's tier caps."""
    if not problem.rules.placement.tier_caps or not len(rows):
        return
    to = outcome.to[rows]
    new = (to >= 0) & (to != problem.owner[rows])
    placed, dest = rows[new], to[new]
    tier = problem.cols.tier[placed]
    room = problem.tier_room[dest, tier]
    capped = room < NO_CAP
    placed, dest, tier, room = placed[capped], dest[capped], tier[capped], room[capped]
    key = dest.astype(np.int64) * problem.tier_room.shape[1] + tier
    order = np.argsort(key, kind="stable")
    placed, key, room = placed[order], key[order], room[order]
    nth = np.arange(len(key)) - np.searchsorted(key, key, side="left")
    over = nth >= room
    if over.any():
        np.subtract.at(load, dest[order][over], problem.weight[placed[over]])
        outcome.set(placed[over], POOL, ("intake_cap",))


def _eligible_apart_from(
    problem: Problem, classes: Classes, c: int, *, intake: bool, hours: bool
) -> np.ndarray:
    """The class's eligible managers if intake caps (and/or working hours) did not count."""
    rep = int(classes.rep[c])
    current, former = problem.relations(rep)
    ok, _ = problem.evaluator.row(rep, current, former)
    ok &= problem.active & problem.accepting & problem.available & problem.not_excluded
    ok &= (problem.capacity > 0) & (problem.level >= classes.min_level[c])
    if not intake:
        ok &= (problem.intake_room > 0) & (problem.tier_room_of(rep) > 0)
    if not hours:
        ok &= problem.on_hours
    return ok


def route_to_fallback(
    problem: Problem, classes: Classes, outcome: Outcome, load: np.ndarray
) -> None:
    """Customers left in the pool because every eligible manager is capped go to the tier's
    (or the rule set's) fallback owner when it may take them (every hard rule but the tier's
    caps; its own caps hold), else stay in the pool with reason ``intake_cap``. Customers
    left for want of a manager within working hours get reason ``outside_hours``."""
    placement = problem.rules.placement
    if not (
        placement.tier_caps or (problem.intake_room < NO_CAP).any() or not problem.on_hours.all()
    ):
        return
    pooled_reasons = {NO_ELIGIBLE, NO_CAPACITY, ("intake_cap",)}
    taken = np.zeros(len(problem.managers), np.int64)
    for c in range(len(classes)):
        rows = classes.members(c)
        pooled = outcome.with_reasons(rows[outcome.to[rows] == POOL], pooled_reasons)
        if not len(pooled):
            continue
        rep = int(classes.rep[c])
        capped = _eligible_apart_from(problem, classes, c, intake=True, hours=False)
        has_room = (problem.intake_room > 0) & (problem.tier_room_of(rep) > 0)
        if not (capped & ~has_room).any():
            nobody = outcome.with_reasons(pooled, [NO_ELIGIBLE])
            if (
                nobody.size
                and _eligible_apart_from(problem, classes, c, intake=False, hours=True).any()
            ):
                outcome.set(nobody, POOL, ("outside_hours",))
            continue
        weight = int(classes.weight[c])
        tier = problem.cols.tier_codes[int(problem.cols.tier[rep])]
        fallback = placement.fallback_for(tier)
        f = problem.index_of.get(fallback) if fallback is not None else None
        fits = 0
        if f is not None and capped[f] and problem.intake_room[f] > 0:
            by_room = (int(problem.capacity[f]) - int(load[f])) // weight
            fits = max(0, min(len(pooled), by_room, int(problem.intake_room[f] - taken[f])))
        if fits and f is not None:
            _, pref = class_eligibility(problem, classes, c)
            outcome.set(pooled[:fits], f, ("fallback_owner", "intake_cap"))
            outcome.score[pooled[:fits]] = pref[f]
            load[f] += fits * weight
            taken[f] += fits
        outcome.set(pooled[fits:], POOL, ("intake_cap",))


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
    rotation_counts: dict = {}
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
        case "weighted_round_robin":
            counts: dict = {}
            for pool, manager_id, received in options.rotation_counts:
                counts.setdefault(pool, {})[manager_id] = received
            rotation_counts, fairness = run_weighted_round_robin(
                problem, classes, outcome, load, rows, counts
            )
            extra = {"fairness": fairness}
        case "optimal":
            result = run_optimal(
                problem, classes, outcome, load, penalty, options.solver_node_limit
            )
            extra = {
                "lower_bound": result.lower_bound,
                "proven_optimal": result.proven_optimal,
                "solver": result.solver,
            }
    hold_to_intake_caps(problem, outcome, load, rows)
    if options.strategy != "successor":
        route_to_fallback(problem, classes, outcome, load)
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
    plan.rotation_counts = rotation_counts
    return plan
