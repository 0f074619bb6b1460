"""Readable explanations of single decisions, built on demand from the plan and the facts."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from app.engine.evaluation import check_condition
from app.engine.facts import Customer, Manager
from app.engine.outcome import KEEP, POOL, Outcome
from app.engine.problem import Problem
from app.engine.rules import Condition, Rule


class Plan(Protocol):
    """What an explanation reads of a plan (``app.engine.plan.Plan`` is one; the plan builds
    its decisions' explanations from here, so this module cannot import it)."""

    strategy: str
    explain: str
    penalty: float
    successor: int | None
    load_after: np.ndarray

    @property
    def problem(self) -> Problem: ...

    @property
    def outcome(self) -> Outcome: ...


MAX_ALTERNATIVES = 5


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(repr, value)) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def _condition_detail(
    cond: Condition, customer: Customer, manager: Manager, current: bool, former: bool
) -> tuple[bool, str]:
    holds, left, right = check_condition(
        cond, customer, manager, is_current=current, is_former=former
    )
    target = f"{cond.reference} ({_fmt(right)})" if cond.reference else _fmt(right)
    return holds, f"{cond.field} ({_fmt(left)}) {cond.op} {target}"


def _rule_detail(
    rule: Rule, customer: Customer, manager: Manager, current: bool, former: bool
) -> tuple[bool, bool, str]:
    """(applies, holds, detail) for one rule on one pair."""
    for cond in rule.when:
        ok, text = _condition_detail(cond, customer, manager, current, former)
        if not ok:
            return False, True, f"does not apply: {text} is false"
    parts = []
    holds = True
    for cond in rule.conditions:
        ok, text = _condition_detail(cond, customer, manager, current, former)
        holds &= ok
        parts.append(text + ("" if ok else " — fails"))
    return True, holds, "; ".join(parts)


def _utilization(workload: float, capacity: int) -> float | None:
    return round(workload / capacity, 6) if capacity > 0 else None


def explain_decision(plan: Plan, i: int) -> dict[str, Any]:
    """The explanation of the i-th decision (shape depends on plan.explain)."""
    p, o = plan.problem, plan.outcome
    to = int(o.to[i])
    reasons = o.reasons[int(o.reason[i])]
    customer = p.cols.customer(i)
    if to == KEEP or "pinned" in reasons or "unchanged" in reasons or "recently_moved" in reasons:
        return _explain_unchanged(plan, i, reasons)
    if to == POOL and plan.successor is not None:
        return _explain_successor_refused(plan, i, customer, plan.successor, reasons)
    if to == POOL:
        return _explain_pooled(plan, i, customer, reasons)
    return _explain_placed(plan, i, customer, to)


def _builtin_checks(plan: Plan, i: int, m: int, *, after_move: bool) -> list[dict[str, Any]]:
    p = plan.problem
    manager = p.managers[m]
    weight = int(p.weight[i])
    min_level = int(p.min_level[i])
    base = int(plan.load_after[m]) - (weight if after_move else 0)
    cap = int(p.capacity[m])
    forced = bool(plan.outcome.forced[i]) and after_move
    return builtin_checks(
        manager,
        min_level=min_level,
        base=base,
        weight=weight,
        cap=cap,
        forced=forced,
        excluded=not p.not_excluded[m],
    )


def builtin_checks(
    manager: Manager,
    *,
    min_level: int,
    base: int,
    weight: int,
    cap: int,
    forced: bool,
    excluded: bool,
) -> list[dict[str, Any]]:
    """The built-in hard rules for one manager, as an explanation lists them (the engine's
    and the single-customer placement's explanations share them)."""
    capacity_ok = base + weight <= cap
    return [
        {
            "id": "tier_min_level",
            "passed": manager.level >= min_level,
            "detail": f"manager level {manager.level}, tier needs at least {min_level}",
        },
        {
            "id": "manager_active",
            "passed": manager.status == "active",
            "detail": f"status {manager.status}",
        },
        {
            "id": "manager_accepting",
            "passed": manager.accepting_new,
            "detail": "accepting new customers" if manager.accepting_new else "not accepting",
        },
        {
            "id": "absent",
            "passed": not manager.absent,
            "detail": "absent" if manager.absent else "available",
        },
        {
            "id": "intake_cap",
            "passed": manager.intake_room is None or manager.intake_room > 0,
            "detail": "no intake cap"
            if manager.intake_room is None
            else f"{max(manager.intake_room, 0)} more new customer(s) allowed now",
        },
        {
            "id": "capacity",
            "passed": capacity_ok or forced,
            "detail": f"workload {base} + {weight} {'<=' if capacity_ok else '>'} capacity {cap}"
            + (" (overridden by the operator)" if forced and not capacity_ok else ""),
        },
        {
            "id": "not_excluded",
            "passed": not excluded,
            "detail": "excluded from this plan" if excluded else "candidate",
        },
    ]


def _preferences(plan: Plan, customer: Customer, i: int, m: int) -> tuple[list[dict], float]:
    p = plan.problem
    current, former = p.relations(i)
    manager = p.managers[m]
    rows, total = [], 0.0
    for pref in p.rules.preferences:
        matched = p.evaluator.preference_matches(
            pref, customer, manager, current=m == current, former=m in former
        )
        contribution = pref.weight if matched else 0.0
        total += contribution
        rows.append(
            {"id": pref.id, "weight": pref.weight, "matched": matched, "contribution": contribution}
        )
    return rows, total


def _explain_placed(plan: Plan, i: int, customer: Customer, m: int) -> dict[str, Any]:
    p = plan.problem
    current, former = p.relations(i)
    manager = p.managers[m]
    rules = _builtin_checks(plan, i, m, after_move=True)
    for rule in p.rules.eligibility:
        _, holds, detail = _rule_detail(rule, customer, manager, m == current, m in former)
        rules.append({"id": rule.id, "passed": holds, "detail": detail})
    prefs, pref_total = _preferences(plan, customer, i, m)
    score = float(plan.outcome.score[i])
    cap = int(p.capacity[m])
    out: dict[str, Any] = {
        "manager_id": str(manager.id),
        "rules": rules,
        "preferences": prefs,
        "utilization_before": _utilization(int(p.workload[m]), cap),
        "utilization_after": _utilization(int(plan.load_after[m]), cap),
        "score": round(score, 6),
    }
    if plan.strategy in ("balanced", "optimal") and plan.penalty > 0:
        at_move = (pref_total - score) / plan.penalty
        out["utilization_at_move"] = round(at_move, 6)
        out["score_formula"] = (
            f"preferences {pref_total:g} - penalty {plan.penalty:g} x utilization after the move "
            f"{at_move:.3f} = {score:.3f}"
        )
    if plan.explain == "full":
        out["alternatives"] = _alternatives(plan, i, customer, chosen=m)
    return out


def _explain_successor_refused(
    plan: Plan, i: int, customer: Customer, m: int, reasons: tuple[str, ...]
) -> dict[str, Any]:
    p = plan.problem
    current, former = p.relations(i)
    manager = p.managers[m]
    rules = _builtin_checks(plan, i, m, after_move=False)
    for check in rules:
        if check["id"] == "capacity":
            # Capacity is checked in placement order, not against the final loads.
            check["passed"] = "violates:capacity" not in reasons
            if check["passed"]:
                check["detail"] = "not the reason (checked when the customer's turn came)"
    for rule in p.rules.eligibility:
        _, holds, detail = _rule_detail(rule, customer, manager, m == current, m in former)
        rules.append({"id": rule.id, "passed": holds, "detail": detail})
    failed = [r["id"] for r in rules if not r["passed"]]
    return {
        "summary": f"successor {manager.id} cannot take this customer: " + ", ".join(failed)
        if failed
        else "not placed: " + ", ".join(reasons),
        "manager_id": str(manager.id),
        "rules": rules,
    }


def _eliminations(plan: Plan, i: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per rule, the managers it rules out for customer i; also the preference scores."""
    p = plan.problem
    current, former = p.relations(i)
    failed: dict[str, np.ndarray] = {
        "tier_min_level": p.level < p.min_level[i],
        "manager_active": ~p.active,
        "manager_accepting": ~p.accepting,
        "absent": ~p.available,
        "intake_cap": ~(p.intake_room > 0),
        "not_excluded": ~p.not_excluded,
    }
    for rule in p.rules.eligibility:
        applies, holds = p.evaluator.rule_outcome(rule, i, current, former)
        failed[rule.id] = applies & ~holds
    eligible = np.ones(len(p.managers), bool)
    for mask in failed.values():
        eligible &= ~mask
    pref = p.evaluator.row(i, current, former)[1]
    return failed, eligible, pref


def _explain_pooled(
    plan: Plan, i: int, customer: Customer, reasons: tuple[str, ...]
) -> dict[str, Any]:
    p = plan.problem
    failed, eligible, _ = _eliminations(plan, i)
    weight = int(p.weight[i])
    room = plan.load_after + weight <= p.capacity
    eliminated = [
        {"id": rule_id, "passed": False, "eliminated": int(mask.sum())}
        for rule_id, mask in failed.items()
        if mask.any()
    ]
    full = int((eligible & ~room).sum())
    if full:
        eliminated.append({"id": "capacity", "passed": False, "eliminated": full})
    if not eligible.any():
        summary = f"none of the {len(p.managers)} managers passes the eligibility rules"
    elif full == int(eligible.sum()):
        summary = (
            f"{int(eligible.sum())} manager(s) are eligible but none has room for "
            f"{weight} more workload units"
        )
    else:
        summary = "not placed: " + ", ".join(reasons)
    out: dict[str, Any] = {
        "summary": summary,
        "rules": eliminated,
        "eligible_managers": int(eligible.sum()),
        "eligible_with_room": int((eligible & room).sum()),
    }
    if plan.explain == "full":
        out["alternatives"] = _alternatives(plan, i, customer, chosen=None)
    return out


def _explain_unchanged(plan: Plan, i: int, reasons: tuple[str, ...]) -> dict[str, Any]:
    texts = {
        "pinned": "pinned customers stay with their current owner",
        "recently_moved": "moved too recently to be moved again",
        "unchanged": "no move needed",
    }
    detail = "; ".join(texts.get(r, r) for r in reasons)
    return {"rules": [{"id": reasons[0], "passed": True, "detail": detail}], "preferences": []}


def _alternatives(
    plan: Plan, i: int, customer: Customer, chosen: int | None
) -> list[dict[str, Any]]:
    """The best few managers that did not get the customer, and why."""
    p = plan.problem
    failed, eligible, pref = _eliminations(plan, i)
    weight = int(p.weight[i])
    cap = p.capacity.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(cap > 0, (plan.load_after + weight) / cap, np.inf)
    score = pref - plan.penalty * util
    room = plan.load_after + weight <= p.capacity
    candidates = np.arange(len(p.managers))
    if chosen is not None:
        candidates = candidates[candidates != chosen]
    rank = np.lexsort((candidates, -score[candidates], ~(eligible & room)[candidates]))
    chosen_score = float(plan.outcome.score[i]) if chosen is not None else None
    out = []
    for m in candidates[rank][:MAX_ALTERNATIVES]:
        eliminated_by = [rule_id for rule_id, mask in failed.items() if mask[m]]
        if eliminated_by:
            why = "not eligible: " + ", ".join(eliminated_by)
        elif not room[m]:
            why = (
                f"over capacity: workload {int(plan.load_after[m])} + {weight} > "
                f"capacity {int(p.capacity[m])}"
            )
        elif chosen_score is not None and score[m] < chosen_score:
            why = f"lower score ({score[m]:.3f} < {chosen_score:.3f})"
        elif chosen_score is not None:
            why = "filled by other customers first (same or higher score at the final loads)"
        else:
            why = "eligible with room at the final loads"
        out.append(
            {
                "manager_id": str(p.managers[m].id),
                "eliminated_by": eliminated_by,
                "score": round(float(score[m]), 6) if np.isfinite(score[m]) else None,
                "utilization_if_chosen": round(float(util[m]), 6) if np.isfinite(util[m]) else None,
                "why_not": why,
            }
        )
    return out
