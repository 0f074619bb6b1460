"""Placing one customer: the decision `plan_assignments` makes for a single customer, computed
on plain Python values instead of the columnar arrays.

`POST /customers/{id}/assign`, an inbound webhook's new customer and a pool claim each place
one customer. The full engine spends most of its time there on set-up sized for a million rows
(columns, class keys, compiled truth tables, the lookahead's flows); for one customer a scalar
pass over the candidate managers is an order of magnitude cheaper.

The full engine stays the reference: `place_customer` returns the same `Decision` (manager,
reasons, score, explanation, forced capacity) as ``plan_assignments([customer], ...)``, or None
where it does not follow the engine (other strategies, a pinned customer, ``explain="full"``),
and the caller then asks the engine. A property test holds the two to that. How it follows:

- ``balanced`` gives a single customer to the best next unit of the engine's fill
  (``lookahead.grouped_fill``): the score ``t0 - 1/slope`` with ``t0 = pref - penalty ×
  load/capacity`` and ``slope = capacity / (penalty × weight)``. The fill's bisection counts a
  unit at a threshold ``T`` when ``floor(slope × (t0 - T) + 1e-9) >= 1``, so a manager alone at
  the top of that (slightly shifted) order wins even when another's exact score ties it; when
  several share the top, the hand-out takes the best exact score, the lower index first.
  Both are reproduced bit for bit (the same float operations, in the same order).
- Reservations of the lookahead never bind a single customer (its own budget is always at
  least one unit), intake caps are already part of eligibility, and the fallback owner's
  step (``planner.route_to_fallback``) is reproduced for a customer left in the pool.
- ``successor`` checks the named manager as ``strategies.run_successor`` does.

Explanations of a placed customer are built here; those of a customer left in the pool (or
refused by the successor), which count over every manager, are rendered by the engine's own
explainer from the decision.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from app.engine.columns import from_epoch, to_epoch
from app.engine.evaluation import check_condition, manager_value
from app.engine.explain import _rule_detail, _utilization, builtin_checks
from app.engine.facts import Customer, EngineError, Manager, Tier
from app.engine.options import PlanOptions
from app.engine.outcome import POOL, Outcome
from app.engine.plan import Decision, Plan
from app.engine.problem import NO_CAP, SCORE_LIMIT, prepare
from app.engine.rules import RELATION_FIELDS, Condition, Rule, RuleSet, compare
from app.vocabulary import Strategy

_SUPPORTED = frozenset({Strategy.BALANCED, Strategy.SUCCESSOR})
_FLOW_LIMIT = 2**30  # beyond it the lookahead is skipped and the engine fills differently
_NEAR = 1e-6  # relative distance within which the fill's order is settled exactly


@dataclasses.dataclass(frozen=True, slots=True)
class _Candidate:
    index: int  # engine index (managers sorted by id)
    manager: Manager
    load: int  # workload with the customer taken off its current owner
    pref: float
    is_current: bool
    is_former: bool


def place_customer(
    customer: Customer,
    managers: Sequence[Manager],
    tiers: Sequence[Tier],
    rules: RuleSet,
    options: PlanOptions,
) -> Decision | None:
    """The engine's decision for one customer, or None where the caller must ask the engine
    (a strategy other than ``balanced`` / ``successor``, a pinned customer, ``full``
    explanations). Raises `EngineError` on the input `plan_assignments` refuses."""
    if options.strategy not in _SUPPORTED or options.explain == "full" or customer.pinned:
        return None
    total = sum((abs(p.weight) for p in rules.preferences), 0.0)
    if not total <= SCORE_LIMIT:
        return None  # the engine names the problem
    tier = _tier_of(customer, tiers)
    if tier.weight >= _FLOW_LIMIT:
        return None
    ordered = sorted(managers, key=lambda m: m.id.int)  # UUIDs order by their integer
    index_of = {m.id: i for i, m in enumerate(ordered)}
    if len(index_of) != len(managers):
        raise EngineError("a manager is given twice")
    seen = _as_engine_sees(customer)
    owner = index_of.get(seen.manager_id, -1) if seen.manager_id is not None else -1
    reads = rules.reads()
    former: frozenset[int] = frozenset()
    if "manager.is_former_owner" in reads:
        former = frozenset(
            index_of[f.manager_id] for f in seen.former_owners if f.manager_id in index_of
        )
    if options.strategy == Strategy.SUCCESSOR:
        if options.successor_id is None:
            raise EngineError("the successor strategy needs successor_id")
        if options.successor_id not in index_of:
            raise EngineError(f"successor {options.successor_id} is not among the given managers")
    weight = tier.weight
    tests = _Tests(seen, rules)

    def load_of(i: int) -> int:
        return ordered[i].workload - (weight if i == owner else 0)

    def candidate(i: int) -> _Candidate:
        m = ordered[i]
        return _Candidate(
            i, m, load_of(i), tests.score(m, i == owner, i in former), i == owner, i in former
        )

    if options.strategy == Strategy.SUCCESSOR:
        s = index_of[options.successor_id]  # type: ignore[index]
        return _successor(seen, tier, rules, options, ordered, candidate(s), tests, managers)
    excluded = options.exclude_manager_ids
    min_level = tier.min_manager_level
    capped_tier = tier.code in rules.placement.tier_caps
    any_eligible = False
    roomy: list[tuple[int, Manager, int, bool, bool]] = []
    for i, m in enumerate(ordered):
        if not (
            m.status == "active"
            and m.accepting_new
            and not m.absent
            and not m.off_hours
            and m.capacity > 0
            and m.level >= min_level
            and (m.intake_room is None or m.intake_room > 0)
        ):
            continue
        if (excluded and m.id in excluded) or (
            capped_tier and _tier_room(m, tier.code, rules) <= 0
        ):
            continue
        current, was = i == owner, i in former
        if not tests.eligible(m, current, was):
            continue
        any_eligible = True
        load = m.workload - (weight if current else 0)
        if (m.capacity - load) // weight >= 1:
            roomy.append((i, m, load, current, was))
    penalty = options.utilization_penalty
    with_room = _scored(roomy, tests, weight, penalty)
    if with_room:
        chosen = _best(with_room, weight, penalty)
        cap = chosen.manager.capacity
        score = chosen.pref - penalty * ((chosen.load + 1 * weight) / cap)
        reasons = ("kept_current_owner",) if chosen.is_current else ("balanced",)
        return _placed(seen, tier, rules, options, chosen, score, reasons, forced=False)
    reasons = ("no_eligible_manager",) if not any_eligible else ("no_capacity",)
    return _pooled(seen, tier, rules, options, ordered, reasons, tests, candidate, managers)


def _tier_of(customer: Customer, tiers: Sequence[Tier]) -> Tier:
    found: Tier | None = None
    codes: set[str] = set()
    for tier in tiers:
        if tier.code in codes:
            raise EngineError(f"tier {tier.code!r} is given twice")
        codes.add(tier.code)
        if tier.code == customer.tier:
            found = tier
    if found is None:
        raise EngineError(f"customers refer to unknown tier(s): {customer.tier}")
    return found


def _as_engine_sees(customer: Customer) -> Customer:
    """The customer as the engine's columns hold it: NaN as None, move times in whole seconds."""
    changes: dict[str, Any] = {}
    for attr in ("annual_value", "satisfaction"):
        value = getattr(customer, attr)
        if value is not None and math.isnan(value):
            changes[attr] = None
    if customer.last_moved_at is not None:
        seconds = from_epoch(to_epoch(customer.last_moved_at))
        if seconds != customer.last_moved_at or seconds.tzinfo != customer.last_moved_at.tzinfo:
            changes["last_moved_at"] = seconds
    return dataclasses.replace(customer, **changes) if changes else customer


def _tier_room(manager: Manager, tier: str, rules: RuleSet) -> float:
    """Room under the tier's caps as the engine counts it in ordinary placement (the tier's
    fallback owner is held to them too: see ``problem.tier_rooms``)."""
    cap = rules.placement.tier_caps.get(tier)
    if cap is None:
        return math.inf
    day, week = next(((d, w) for code, d, w in manager.tier_intake if code == tier), (0, 0))
    room = float(NO_CAP)
    if cap.max_new_per_day is not None:
        room = min(room, cap.max_new_per_day - day)
    if cap.max_new_per_week is not None:
        room = min(room, cap.max_new_per_week - week)
    return room


_Test = Callable[[Manager, bool, bool], bool]


class _Tests:
    """The rule set's conditions for one customer: customer-only conditions settled once,
    the others as tests of a manager with memoised comparisons (managers share regions,
    languages, levels)."""

    def __init__(self, customer: Customer, rules: RuleSet) -> None:
        self.customer = customer
        self.rules = rules
        self._eligibility: list[tuple[tuple[_Test, ...], tuple[_Test, ...]]] = []
        for rule in rules.eligibility:
            when = self._tests(rule.when)
            conditions = self._tests(rule.conditions)
            if when is not None:  # else the rule never applies to this customer
                self._eligibility.append((when, (_never,) if conditions is None else conditions))
        self._preferences: list[tuple[float, tuple[_Test, ...]]] = []
        for pref in rules.preferences:
            tests = self._tests((*pref.when, *pref.conditions))
            if tests is not None:  # else it never holds: adding 0 leaves the score as it is
                self._preferences.append((pref.weight, tests))

    def _tests(self, conds: Sequence[Condition]) -> tuple[_Test, ...] | None:
        """The manager tests of all ``conds`` (None: one fails whatever the manager)."""
        tests: list[_Test] = []
        for cond in conds:
            test = self._compile(cond)
            if test is True:
                continue
            if test is False:
                return None
            tests.append(test)
        return tuple(tests)

    def _compile(self, cond: Condition) -> _Test | bool:
        customer = self.customer
        op = cond.op
        paths = [cond.field] if cond.reference is None else [cond.field, cond.reference]
        axes = [p.partition(".")[::2] for p in paths]
        if all(side == "customer" for side, _ in axes):
            left = getattr(customer, axes[0][1])
            right = cond.literal() if len(axes) == 1 else getattr(customer, axes[1][1])
            return compare(op, left, right)
        if any(side == "manager" and attr in RELATION_FIELDS for side, attr in axes):
            literal = cond.literal() if len(axes) == 1 else None
            if axes in ([("manager", "is_current_owner")], [("manager", "is_former_owner")]):
                table = {flag: compare(op, flag, literal) for flag in (False, True)}
                if axes[0][1] == "is_current_owner":
                    return lambda m, current, former: table[current]
                return lambda m, current, former: table[former]

            def read(side: str, attr: str, m: Manager, current: bool, former: bool) -> Any:
                if side == "customer":
                    return getattr(customer, attr)
                if attr == "is_current_owner":
                    return current
                if attr == "is_former_owner":
                    return former
                return manager_value(m, attr)

            def related(m: Manager, current: bool, former: bool) -> bool:
                left = read(*axes[0], m, current, former)
                right = literal if len(axes) == 1 else read(*axes[1], m, current, former)
                return compare(op, left, right)

            return related
        memo: dict[Any, bool] = {}
        (side, attr), *rest = axes
        if not rest:  # manager field against a literal
            literal = cond.literal()
            get = _reader(attr)

            def against_literal(m: Manager, current: bool, former: bool) -> bool:
                value = get(m)
                try:
                    return memo[value]
                except KeyError:
                    result = memo[value] = compare(op, value, literal)
                    return result
                except TypeError:
                    return compare(op, value, literal)

            return against_literal
        (rside, rattr) = rest[0]
        if side == "manager" and rside == "customer":  # the commonest: a customer's value
            get, right = _reader(attr), getattr(customer, rattr)

            def against_customer(m: Manager, current: bool, former: bool) -> bool:
                left = get(m)
                try:
                    return memo[left]
                except KeyError:
                    result = memo[left] = compare(op, left, right)
                    return result
                except TypeError:
                    return compare(op, left, right)

            return against_customer

        def between(m: Manager, current: bool, former: bool) -> bool:
            left = getattr(customer, attr) if side == "customer" else manager_value(m, attr)
            right = getattr(customer, rattr) if rside == "customer" else manager_value(m, rattr)
            key = (left, right)
            try:
                return memo[key]
            except KeyError:
                result = memo[key] = compare(op, left, right)
                return result
            except TypeError:
                return compare(op, left, right)

        return between

    def rule(self, rule: Rule, manager: Manager, current: bool, former: bool) -> tuple[bool, bool]:
        """(applies, holds) of one rule for one manager."""

        def holds(conds: Sequence[Condition]) -> bool:
            tests = self._tests(conds)
            return tests is not None and all(t(manager, current, former) for t in tests)

        return holds(rule.when), holds(rule.conditions)

    def eligible(self, manager: Manager, current: bool, former: bool) -> bool:
        """Whether the manager passes every eligibility rule of the rule set."""
        for when, conditions in self._eligibility:
            if all(t(manager, current, former) for t in when) and not all(
                t(manager, current, former) for t in conditions
            ):
                return False
        return True

    def highest_score(self) -> float:
        """No manager scores more than this (every positive preference holding)."""
        return sum((w for w, _ in self._preferences if w > 0), 0.0)

    def score(self, manager: Manager, current: bool, former: bool) -> float:
        """The preference score, added up in the engine's order (so it is the same float)."""
        total = 0.0
        for weight, tests in self._preferences:
            for test in tests:
                if not test(manager, current, former):
                    break
            else:
                total += weight * 1
        return total


def _reader(attr: str) -> Callable[[Manager], Any]:
    """How a test reads a manager field (``evaluation.manager_value``, without its dispatch
    for the plain fields)."""
    if attr == "utilization":
        return lambda m: manager_value(m, attr)
    return operator.attrgetter(attr)


def _never(manager: Manager, current: bool, former: bool) -> bool:
    return False


def _scored(
    roomy: Sequence[tuple[int, Manager, int, bool, bool]],
    tests: _Tests,
    weight: int,
    penalty: float,
) -> list[_Candidate]:
    """The candidates with their preference scores, leaving out managers that cannot win:
    taken from the least utilized after the move, and stopping once even the highest score
    the preferences allow, less the utilization term, falls clearly below the best found
    (clearly: by more than the fill's tolerance, see `_best`)."""
    if penalty <= 0 or len(roomy) < 8:
        return [
            _Candidate(i, m, load, tests.score(m, current, was), current, was)
            for i, m, load, current, was in roomy
        ]
    ceiling = tests.highest_score()
    term = sorted(
        (penalty * ((load + 1 * weight) / m.capacity), k)
        for k, (_, m, load, _, _) in enumerate(roomy)
    )
    out: list[_Candidate] = []
    best = -math.inf
    slack = 1e-9 * penalty * weight
    for u, k in term:
        if ceiling - u < best - 4 * (_NEAR * (1.0 + abs(best)) + slack):
            break
        i, m, load, current, was = roomy[k]
        pref = tests.score(m, current, was)
        out.append(_Candidate(i, m, load, pref, current, was))
        best = max(best, pref - u)
    out.sort(key=lambda c: c.index)
    return out


def _best(candidates: Sequence[_Candidate], weight: int, penalty: float) -> _Candidate:
    """The manager the engine's fill gives a single customer to (see the module docstring)."""
    if penalty <= 0:  # water-filling by preference alone: the best, the lower index first
        return min(candidates, key=lambda c: (-c.pref, c.index))
    if len(candidates) == 1:
        return candidates[0]
    nxt: list[float] = []
    shifted: list[float] = []
    for c in candidates:
        cap = float(c.manager.capacity)
        t0 = c.pref - penalty * c.load / cap
        slope = cap / (penalty * weight)
        nxt.append(t0 - 1 / slope)
        shifted.append(t0 - (1 - 1e-9) / slope)
    top = max(shifted)
    near = [k for k, f in enumerate(shifted) if f >= top - _NEAR * (1.0 + abs(top))]
    if len(near) > 1:
        exact = {k: _last_counted(candidates[k], weight, penalty, shifted[k]) for k in near}
        best = max(exact.values())
        near = [k for k in near if exact[k] == best]
    if len(near) == 1:
        return candidates[near[0]]
    # Several managers share the top: the fill's hand-out, best exact score, lower index.
    k = min(range(len(candidates)), key=lambda j: (-nxt[j], candidates[j].index))
    return candidates[k]


def _last_counted(c: _Candidate, weight: int, penalty: float, guess: float) -> int:
    """The largest threshold (as an ordered float key) at which the fill's count gives the
    manager its first unit: ``floor(slope × (t0 - T) + 1e-9) >= 1``."""
    cap = float(c.manager.capacity)
    t0 = c.pref - penalty * c.load / cap
    slope = cap / (penalty * weight)

    def counted(key: int) -> bool:
        return math.floor(slope * (t0 - _from_key(key)) + 1e-9) >= 1

    lo = hi = _key(guess)
    step = 1
    if counted(lo):
        while counted(hi):
            lo, hi = hi, hi + step
            step *= 2
    else:
        while not counted(lo):
            hi, lo = lo, lo - step
            step *= 2
    while hi - lo > 1:  # counted(lo), not counted(hi)
        mid = (lo + hi) // 2
        if counted(mid):
            lo = mid
        else:
            hi = mid
    return lo


_SIGN = 1 << 63


def _key(x: float) -> int:
    """A float as an integer in the same order (adjacent floats are adjacent integers)."""
    (bits,) = struct.unpack("<Q", struct.pack("<d", x))
    return -(bits & (_SIGN - 1)) if bits & _SIGN else bits


def _from_key(key: int) -> float:
    bits = (-key) | _SIGN if key < 0 else key
    (x,) = struct.unpack("<d", struct.pack("<Q", bits))
    return float(x)


def _placed(
    customer: Customer,
    tier: Tier,
    rules: RuleSet,
    options: PlanOptions,
    chosen: _Candidate,
    score: float,
    reasons: tuple[str, ...],
    *,
    forced: bool,
) -> Decision:
    explanation = None
    if options.explain != "none":
        explanation = _explain_placed(customer, tier, rules, options, chosen, score, forced)
    return Decision(
        customer_id=customer.id,
        from_manager_id=customer.manager_id,
        manager_id=chosen.manager.id,
        score=round(float(score), 6),
        reasons=reasons,
        explanation=explanation,
        forced=("capacity",) if forced else (),
    )


def _explain_placed(
    customer: Customer,
    tier: Tier,
    rules: RuleSet,
    options: PlanOptions,
    chosen: _Candidate,
    score: float,
    forced: bool,
) -> dict[str, Any]:
    """``explain._explain_placed`` for one customer on plain values."""
    manager = chosen.manager
    weight, cap = tier.weight, manager.capacity
    base = chosen.load
    after = base + weight
    checks = builtin_checks(
        manager,
        min_level=tier.min_manager_level,
        base=base,
        weight=weight,
        cap=cap,
        forced=forced,
        excluded=manager.id in options.exclude_manager_ids,
    )
    for rule in rules.eligibility:
        _, holds, detail = _rule_detail(
            rule, customer, manager, chosen.is_current, chosen.is_former
        )
        checks.append({"id": rule.id, "passed": holds, "detail": detail})
    prefs: list[dict[str, Any]] = []
    pref_total = 0.0
    for pref in rules.preferences:
        matched = all(
            _rule_detail_condition(c, customer, manager, chosen)
            for c in (*pref.when, *pref.conditions)
        )
        contribution = pref.weight if matched else 0.0
        pref_total += contribution
        prefs.append(
            {"id": pref.id, "weight": pref.weight, "matched": matched, "contribution": contribution}
        )
    out: dict[str, Any] = {
        "manager_id": str(manager.id),
        "rules": checks,
        "preferences": prefs,
        "utilization_before": _utilization(manager.workload, cap),
        "utilization_after": _utilization(after, cap),
        "score": round(score, 6),
    }
    penalty = options.utilization_penalty
    if options.strategy in ("balanced", "optimal") and penalty > 0:
        at_move = (pref_total - score) / penalty
        out["utilization_at_move"] = round(at_move, 6)
        out["score_formula"] = (
            f"preferences {pref_total:g} - penalty {penalty:g} x utilization after the move "
            f"{at_move:.3f} = {score:.3f}"
        )
    return out


def _rule_detail_condition(
    cond: Condition, customer: Customer, manager: Manager, chosen: _Candidate
) -> bool:
    return check_condition(
        cond, customer, manager, is_current=chosen.is_current, is_former=chosen.is_former
    )[0]


def _successor(
    customer: Customer,
    tier: Tier,
    rules: RuleSet,
    options: PlanOptions,
    ordered: Sequence[Manager],
    s: _Candidate,
    tests: _Tests,
    given: Sequence[Manager],
) -> Decision:
    """``strategies.run_successor`` for one customer."""
    manager = s.manager
    if manager.id in options.exclude_manager_ids:
        return _rendered(customer, given, tier, rules, options, POOL, ("excluded_successor",))
    violations = []
    if manager.level < tier.min_manager_level:
        violations.append("tier_min_level")
    if manager.status != "active":
        violations.append("manager_active")
    if not manager.accepting_new:
        violations.append("manager_accepting")
    if manager.absent:
        violations.append("absent")
    if manager.off_hours:
        violations.append("outside_hours")
    intake = NO_CAP if manager.intake_room is None else manager.intake_room
    if not (intake > 0 and _tier_room(manager, tier.code, rules) > 0):
        violations.append("intake_cap")
    for rule in rules.eligibility:
        applies, holds = tests.rule(rule, manager, s.is_current, s.is_former)
        if applies and not holds:
            violations.append(rule.id)
    if violations:
        codes = tuple(f"violates:{v}" for v in violations)
        return _rendered(
            customer, given, tier, rules, options, POOL, ("successor_ineligible", *codes)
        )
    cap, weight = manager.capacity, tier.weight
    fit = max(0, min(1, (cap - s.load) // weight)) if cap > 0 else 0
    taken = fit if not options.force else 1
    if not taken:
        return _rendered(
            customer, given, tier, rules, options, POOL, ("no_capacity", "violates:capacity")
        )
    if cap > 0:
        score = s.pref - options.utilization_penalty * ((s.load + 1 * weight) / cap)
    else:
        score = s.pref
    if fit:
        return _placed(customer, tier, rules, options, s, score, ("successor",), forced=False)
    return _placed(
        customer, tier, rules, options, s, score, ("successor", "violates:capacity"), forced=True
    )


def _pooled(
    customer: Customer,
    tier: Tier,
    rules: RuleSet,
    options: PlanOptions,
    ordered: Sequence[Manager],
    reasons: tuple[str, ...],
    tests: _Tests,
    candidate: Callable[[int], _Candidate],
    given: Sequence[Manager],
) -> Decision:
    """A customer nobody could take: ``planner.route_to_fallback`` for one customer."""
    placement = rules.placement
    capped_anywhere = bool(placement.tier_caps) or any(m.intake_room is not None for m in ordered)
    if not (capped_anywhere or any(m.off_hours for m in ordered)):
        return _rendered(customer, given, tier, rules, options, POOL, reasons)

    def has_room(m: Manager) -> bool:
        intake = NO_CAP if m.intake_room is None else m.intake_room
        return intake > 0 and _tier_room(m, tier.code, rules) > 0

    # Eligible but for intake caps (working hours count), and eligible but for working hours.
    but_caps: set[int] = set()
    blocked_by_caps = False
    but_hours = False
    for i, m in enumerate(ordered):
        if not (
            m.status == "active"
            and m.accepting_new
            and not m.absent
            and m.id not in options.exclude_manager_ids
            and m.capacity > 0
            and m.level >= tier.min_manager_level
        ):
            continue
        c = candidate(i)
        if not tests.eligible(m, c.is_current, c.is_former):
            continue
        room = has_room(m)
        if not m.off_hours:
            but_caps.add(i)
            blocked_by_caps |= not room
        but_hours |= room
    if not blocked_by_caps:
        if reasons == ("no_eligible_manager",) and but_hours:
            reasons = ("outside_hours",)
        return _rendered(customer, given, tier, rules, options, POOL, reasons)
    fallback = placement.fallback_for(tier.code)
    f = next((i for i, m in enumerate(ordered) if m.id == fallback), None)
    if f is not None and f in but_caps:
        m = ordered[f]
        intake = NO_CAP if m.intake_room is None else m.intake_room
        c = candidate(f)
        if intake > 0 and min(1, (m.capacity - c.load) // tier.weight, intake) > 0:
            reasons = ("fallback_owner", "intake_cap")
            return _placed(customer, tier, rules, options, c, c.pref, reasons, forced=False)
    return _rendered(customer, given, tier, rules, options, POOL, ("intake_cap",))


def _rendered(
    customer: Customer,
    managers: Sequence[Manager],
    tier: Tier,
    rules: RuleSet,
    options: PlanOptions,
    to: int,
    reasons: tuple[str, ...],
) -> Decision:
    """A decision that places nobody; its explanation (which counts over every manager) is
    rendered by the engine's explainer."""
    if options.explain == "none":
        return Decision(
            customer_id=customer.id,
            from_manager_id=customer.manager_id,
            manager_id=None,
            score=0.0,
            reasons=reasons,
            explanation=None,
        )
    problem = prepare([customer], managers, [tier], rules, options.exclude_manager_ids)
    outcome = Outcome.empty(1)
    outcome.set(0, to, reasons)
    load = problem.workload.copy()
    if problem.owner[0] >= 0:
        load[problem.owner[0]] -= tier.weight
    successor = None
    if options.strategy == Strategy.SUCCESSOR and options.successor_id is not None:
        successor = problem.index_of[options.successor_id]
    plan = Plan(
        strategy=options.strategy,
        problem=problem,
        outcome=outcome,
        load_before_plan=load,
        load_after=np.asarray(load),
        explain=options.explain,
        penalty=options.utilization_penalty,
        successor=successor,
    )
    return plan.decision(0)
