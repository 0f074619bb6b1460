"""Placing one customer: the decision `plan_assignments` makes for a single customer, computed
on plain Python values instead of the columnar arrays.

`POST /customers/{id}/assign`, an inbound webhook's new customer and a pool claim each place
one customer. The full engine spends most of its time there on set-up sized for a million rows
(columns, class keys, compiled truth tables, the lookahead's flows); for one customer a scalar
pass over the candidate managers is an order of magnitude cheaper.

The managers come as **rows**: tuples of a `Manager`'s fields in their declared order
(``ROW_FIELDS``); their id order is the engine's, which breaks ties. A caller reading them
from the database builds no object per manager; the placement builds a `Manager` only for the
one it explains. The few rows that stand in a relation to the customer (its owner, a former
owner, a named successor, the tier's fallback owner, an excluded manager) are named by their
position in ``marks``. Eligibility and preference score depend only on the manager fields the
rules read (and those relations), so they are computed once per distinct combination of
those values, which managers share (regions, languages, levels).

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
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from app.engine.columns import from_epoch, to_epoch
from app.engine.evaluation import check_condition
from app.engine.explain import _rule_detail, _utilization, builtin_checks
from app.engine.facts import Customer, EngineError, Manager, Tier
from app.engine.options import PlanOptions
from app.engine.outcome import POOL, Outcome
from app.engine.plan import Decision, Plan
from app.engine.problem import NO_CAP, SCORE_LIMIT, prepare
from app.engine.rules import RELATION_FIELDS, Condition, RuleSet, compare
from app.vocabulary import Strategy

_SUPPORTED = frozenset({Strategy.BALANCED, Strategy.SUCCESSOR})
_FLOW_LIMIT = 2**30  # beyond it the lookahead is skipped and the engine fills differently
_NEAR = 1e-6  # relative distance within which the fill's order is settled exactly

Row = tuple[Any, ...]
"""A manager as a tuple of its fields, in the order of ``ROW_FIELDS``."""

ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Manager))
_AT = {name: i for i, name in enumerate(ROW_FIELDS)}
_WORKLOAD, _CAPACITY = _AT["workload"], _AT["capacity"]
_INTAKE, _OFF_HOURS = _AT["intake_room"], _AT["off_hours"]
as_row: Callable[[Manager], Row] = operator.attrgetter(*ROW_FIELDS)
"""A `Manager` as a row (``Manager(*row)`` is the same manager)."""
_ID_INT = operator.attrgetter("id.int")

# What a row's position in ``marks`` may say about that manager (bits).
CURRENT = 1  # the customer's current owner
FORMER = 2  # a former owner
SUCCESSOR = 4  # the manager named by ``options.successor_id``
FALLBACK = 8  # the owner of the tier's customers every eligible manager is capped for
EXCLUDED = 16  # one of ``options.exclude_manager_ids``


@dataclasses.dataclass(frozen=True, slots=True)
class _Candidate:
    index: int  # position among the rows
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
    if not _follows_engine(customer, rules, options):
        return None
    tier = _tier_of(customer, tiers)
    if tier.weight >= _FLOW_LIMIT:
        return None
    keys = list(map(_ID_INT, managers))  # UUIDs order by their integer
    if len(set(keys)) != len(keys):
        raise EngineError("a manager is given twice")
    wanted: dict[int, int] = {}
    for manager_id, bit in (
        (customer.manager_id, CURRENT),
        *((f.manager_id, FORMER) for f in customer.former_owners),
        (options.successor_id, SUCCESSOR),
        (rules.placement.fallback_for(tier.code), FALLBACK),
        *((e, EXCLUDED) for e in options.exclude_manager_ids),
    ):
        if manager_id is not None:
            wanted[manager_id.int] = wanted.get(manager_id.int, 0) | bit
    marks: dict[int, int] = {}
    for key, bits in wanted.items():
        try:
            marks[keys.index(key)] = bits
        except ValueError:  # not among the managers
            continue
    rows = list(map(as_row, managers))
    return place_among(customer, tier, rules, options, rows, marks, ranks=keys)


def place_among(
    customer: Customer,
    tier: Tier,
    rules: RuleSet,
    options: PlanOptions,
    rows: Sequence[Row],
    marks: Mapping[int, int],
    *,
    ranks: Sequence[int] | None = None,
) -> Decision | None:
    """`place_customer` over manager rows (see the module docstring), with the customer's
    tier and the marks of the rows related to it (``CURRENT`` … ``EXCLUDED``). ``ranks``
    orders the rows as the engine does (by id: any key increasing with the id); None: the
    rows come in that order."""
    if not _follows_engine(customer, rules, options) or tier.weight >= _FLOW_LIMIT:
        return None
    seen = _as_engine_sees(customer)
    judge = _Judge(seen, rules)
    if options.strategy == Strategy.SUCCESSOR:
        if options.successor_id is None:
            raise EngineError("the successor strategy needs successor_id")
        s = next((i for i, bits in marks.items() if bits & SUCCESSOR), None)
        if s is None:
            raise EngineError(f"successor {options.successor_id} is not among the given managers")
        return _successor(seen, tier, rules, options, rows, marks, judge, s)
    weight = tier.weight
    min_level = tier.min_manager_level
    code = tier.code
    capped_tier = code in rules.placement.tier_caps
    key, memo = judge.key, judge.memo
    any_eligible = False
    roomy: list[tuple[int, float, int, int]] = []  # position, preference score, load, capacity
    for i, row in enumerate(rows):
        (_, level, cap, load, status, accepting, _, _, _, _, absent, intake, caps, _, off) = row
        if not (
            status == "active"
            and accepting
            and not absent
            and not off
            and cap > 0
            and level >= min_level
            and (intake is None or intake > 0)
        ):
            continue
        bits = marks.get(i, 0)
        if bits:
            if bits & EXCLUDED:
                continue
            current = bool(bits & CURRENT)
            eligible, pref = judge.judged(row, current, bool(bits & FORMER))
            if current:
                load -= weight
        else:
            try:
                eligible, pref = memo[key(row)]
            except KeyError:
                eligible, pref = judge.remember(row)
            except TypeError:  # an unhashable value: no memo
                eligible, pref = judge.judged(row, False, False)
        if not eligible or (capped_tier and _tier_room(caps, code, rules) <= 0):
            continue
        any_eligible = True
        if (cap - load) // weight >= 1:
            roomy.append((i, pref, load, cap))
    penalty = options.utilization_penalty
    if roomy:
        i, pref, load, cap = _best(roomy, weight, penalty, ranks)
        chosen = _candidate(rows, marks, i, load, pref)
        score = pref - penalty * ((load + 1 * weight) / cap)
        reasons = ("kept_current_owner",) if chosen.is_current else ("balanced",)
        return _placed(seen, tier, rules, options, chosen, score, reasons, forced=False)
    reasons = ("no_eligible_manager",) if not any_eligible else ("no_capacity",)
    return _pooled(seen, tier, rules, options, rows, marks, reasons, judge)


def _follows_engine(customer: Customer, rules: RuleSet, options: PlanOptions) -> bool:
    if options.strategy not in _SUPPORTED or options.explain == "full" or customer.pinned:
        return False
    return _compiled(rules).bounded  # else the engine names the problem


def _candidate(
    rows: Sequence[Row], marks: Mapping[int, int], i: int, load: int, pref: float
) -> _Candidate:
    bits = marks.get(i, 0)
    return _Candidate(i, Manager(*rows[i]), load, pref, bool(bits & CURRENT), bool(bits & FORMER))


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


def _tier_room(tier_intake: tuple[tuple[str, int, int], ...], tier: str, rules: RuleSet) -> float:
    """Room under the tier's caps as the engine counts it in ordinary placement (the tier's
    fallback owner is held to them too: see ``problem.tier_rooms``), from a manager's
    ``tier_intake``."""
    cap = rules.placement.tier_caps.get(tier)
    if cap is None:
        return math.inf
    day, week = next(((d, w) for code, d, w in tier_intake if code == tier), (0, 0))
    room = float(NO_CAP)
    if cap.max_new_per_day is not None:
        room = min(room, cap.max_new_per_day - day)
    if cap.max_new_per_week is not None:
        room = min(room, cap.max_new_per_week - week)
    return room


_Cond = tuple[str, tuple[tuple[str, str], ...], Any]
"""A condition as the placement reads it: operator, the (side, attribute) of its field and
reference, and its literal (None with a reference)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Compiled:
    """A rule set as the placement reads it, settled once per rule set: whether its scores
    stay within the engine's bound, each rule's conditions, and the row fields a manager's
    eligibility and score depend on (``key``)."""

    rules: RuleSet
    bounded: bool
    eligibility: tuple[tuple[tuple[_Cond, ...], tuple[_Cond, ...]], ...]
    preferences: tuple[tuple[float, tuple[_Cond, ...]], ...]
    key: Callable[[Row], Any]


_COMPILED: dict[int, _Compiled] = {}
_COMPILED_KEPT = 16
_COMPILED_LOCK = threading.Lock()


def _compiled(rules: RuleSet) -> _Compiled:
    """The rule set compiled, cached by identity (a stored version is parsed into one object:
    ``rules.service.parse_stored``); the entry holds the rule set, so its id is not reused."""
    found = _COMPILED.get(id(rules))
    if found is not None and found.rules is rules:
        return found

    def cond(c: Condition) -> _Cond:
        paths = [c.field] if c.reference is None else [c.field, c.reference]
        axes = tuple((side, attr) for side, _, attr in (p.partition(".") for p in paths))
        return c.op, axes, c.literal() if c.reference is None else None

    eligibility = tuple(
        (tuple(map(cond, r.when)), tuple(map(cond, r.conditions))) for r in rules.eligibility
    )
    preferences = tuple(
        (p.weight, tuple(map(cond, (*p.when, *p.conditions)))) for p in rules.preferences
    )
    read: set[int] = set()
    for conds in (*(w + c for w, c in eligibility), *(c for _, c in preferences)):
        for _, axes, _ in conds:
            for side, attr in axes:
                if side != "manager" or attr in RELATION_FIELDS:
                    continue
                if attr == "utilization":
                    read |= {_WORKLOAD, _CAPACITY}
                else:
                    read.add(_AT[attr])
    key: Callable[[Row], Any] = operator.itemgetter(*sorted(read)) if read else _nothing
    total = sum((abs(p.weight) for p in rules.preferences), 0.0)
    built = _Compiled(rules, total <= SCORE_LIMIT, eligibility, preferences, key)
    with _COMPILED_LOCK:
        while len(_COMPILED) >= _COMPILED_KEPT:
            del _COMPILED[next(iter(_COMPILED))]
        _COMPILED[id(rules)] = built
    return built


def _nothing(row: Row) -> None:
    return None


_Test = Callable[[Row, bool, bool], bool]


class _Judge:
    """The rule set's verdict on managers for one customer: eligibility and preference score
    of a row. Customer-only conditions are settled once; ``memo`` keeps the verdict per
    combination of the row fields the rules read (``key``), for rows related to the customer
    in no way, which are all but a few."""

    def __init__(self, customer: Customer, rules: RuleSet) -> None:
        compiled = _compiled(rules)
        self.customer = customer
        self._eligibility: list[tuple[tuple[_Test, ...], tuple[_Test, ...]]] = []
        for when, conditions in compiled.eligibility:
            when_tests = self._tests(when)
            condition_tests = self._tests(conditions)
            if when_tests is not None:  # else the rule never applies to this customer
                self._eligibility.append(
                    (when_tests, (_never,) if condition_tests is None else condition_tests)
                )
        self._preferences: list[tuple[float, tuple[_Test, ...]]] = []
        for weight, conds in compiled.preferences:
            tests = self._tests(conds)
            if tests is not None:  # else it never holds: adding 0 leaves the score as it is
                self._preferences.append((weight, tests))
        self.key = compiled.key
        self.memo: dict[Any, tuple[bool, float]] = {}

    def _tests(self, conds: Sequence[_Cond]) -> tuple[_Test, ...] | None:
        """The manager tests of all ``conds`` (None: one fails whatever the manager)."""
        tests: list[_Test] = []
        for cond in conds:
            test = self._compile(*cond)
            if test is True:
                continue
            if test is False:
                return None
            tests.append(test)
        return tuple(tests)

    def _compile(self, op: str, axes: tuple[tuple[str, str], ...], literal: Any) -> _Test | bool:
        customer = self.customer
        if all(side == "customer" for side, _ in axes):
            left = getattr(customer, axes[0][1])
            right = literal if len(axes) == 1 else getattr(customer, axes[1][1])
            return compare(op, left, right)
        if any(side == "manager" and attr in RELATION_FIELDS for side, attr in axes):
            if axes in ((("manager", "is_current_owner"),), (("manager", "is_former_owner"),)):
                table = {flag: compare(op, flag, literal) for flag in (False, True)}
                if axes[0][1] == "is_current_owner":
                    return lambda row, current, former: table[current]
                return lambda row, current, former: table[former]

            def read(side: str, attr: str, row: Row, current: bool, former: bool) -> Any:
                if side == "customer":
                    return getattr(customer, attr)
                if attr == "is_current_owner":
                    return current
                if attr == "is_former_owner":
                    return former
                return _reader(attr)(row)

            def related(row: Row, current: bool, former: bool) -> bool:
                left = read(*axes[0], row, current, former)
                right = literal if len(axes) == 1 else read(*axes[1], row, current, former)
                return compare(op, left, right)

            return related
        memo: dict[Any, bool] = {}
        (side, attr), *rest = axes
        if not rest:  # manager field against a literal
            get = _reader(attr)

            def against_literal(row: Row, current: bool, former: bool) -> bool:
                value = get(row)
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

            def against_customer(row: Row, current: bool, former: bool) -> bool:
                left = get(row)
                try:
                    return memo[left]
                except KeyError:
                    result = memo[left] = compare(op, left, right)
                    return result
                except TypeError:
                    return compare(op, left, right)

            return against_customer
        get_left = _reader(attr) if side == "manager" else None
        get_right = _reader(rattr) if rside == "manager" else None

        def between(row: Row, current: bool, former: bool) -> bool:
            left = getattr(customer, attr) if get_left is None else get_left(row)
            right = getattr(customer, rattr) if get_right is None else get_right(row)
            key = (left, right)
            try:
                return memo[key]
            except KeyError:
                result = memo[key] = compare(op, left, right)
                return result
            except TypeError:
                return compare(op, left, right)

        return between

    def remember(self, row: Row) -> tuple[bool, float]:
        """The verdict on a row related to the customer in no way, kept in ``memo`` under
        ``key(row)``: the row fields the rules read."""
        verdict = self.memo[self.key(row)] = self.judged(row, False, False)
        return verdict

    def judged(self, row: Row, current: bool, former: bool) -> tuple[bool, float]:
        """(eligible, preference score) of one manager row; the score of an ineligible
        manager is not computed (0.0)."""
        if self._eligibility and not self.eligible(row, current, former):
            return False, 0.0
        return True, self.score(row, current, former)

    def eligible(self, row: Row, current: bool, former: bool) -> bool:
        """Whether the manager passes every eligibility rule of the rule set."""
        for when, conditions in self._eligibility:
            if all(t(row, current, former) for t in when) and not all(
                t(row, current, former) for t in conditions
            ):
                return False
        return True

    def score(self, row: Row, current: bool, former: bool) -> float:
        """The preference score, added up in the engine's order (so it is the same float)."""
        total = 0.0
        for weight, tests in self._preferences:
            if len(tests) == 1:  # the commonest: one condition
                if tests[0](row, current, former):
                    total += weight * 1
                continue
            for test in tests:
                if not test(row, current, former):
                    break
            else:
                total += weight * 1
        return total


def _reader(attr: str) -> Callable[[Row], Any]:
    """How a test reads a manager field from a row (``evaluation.manager_value`` on rows)."""
    if attr == "utilization":
        return _utilization_of
    return operator.itemgetter(_AT[attr])


def _utilization_of(row: Row) -> float | None:
    capacity = row[_CAPACITY]
    return row[_WORKLOAD] / capacity if capacity > 0 else None


def _never(row: Row, current: bool, former: bool) -> bool:
    return False


def _best(
    roomy: Sequence[tuple[int, float, int, int]],
    weight: int,
    penalty: float,
    ranks: Sequence[int] | None,
) -> tuple[int, float, int, int]:
    """The (position, preference score, load, capacity) the engine's fill gives a single
    customer to (see the module docstring)."""

    def rank(i: int) -> int:
        return i if ranks is None else ranks[i]

    if penalty <= 0:  # water-filling by preference alone: the best, the lower index first
        return min(roomy, key=lambda c: (-c[1], rank(c[0])))
    if len(roomy) == 1:
        return roomy[0]
    # t0 - (1 - 1e-9) / slope, with t0 = pref - penalty × load / cap and slope = cap /
    # (penalty × weight): the same float operations as the fill's.
    per_unit = penalty * weight
    shifted = [
        pref - penalty * load / cap - _ALMOST_ONE / (cap / per_unit) for _, pref, load, cap in roomy
    ]
    top = max(shifted)
    bar = top - _NEAR * (1.0 + abs(top))
    near = [k for k, f in enumerate(shifted) if f >= bar]
    if len(near) > 1:
        exact = {k: _last_counted(roomy[k], weight, penalty, shifted[k]) for k in near}
        best = max(exact.values())
        near = [k for k in near if exact[k] == best]
    if len(near) == 1:
        return roomy[near[0]]
    # Several managers share the top: the fill's hand-out, best exact score, lower index.
    nxt = [pref - penalty * load / cap - 1 / (cap / per_unit) for _, pref, load, cap in roomy]
    k = min(range(len(roomy)), key=lambda j: (-nxt[j], rank(roomy[j][0])))
    return roomy[k]


_ALMOST_ONE = 1 - 1e-9


def _last_counted(c: tuple[int, float, int, int], weight: int, penalty: float, guess: float) -> int:
    """The largest threshold (as an ordered float key) at which the fill's count gives the
    manager its first unit: ``floor(slope × (t0 - T) + 1e-9) >= 1``."""
    _, pref, load, capacity = c
    cap = float(capacity)
    t0 = pref - penalty * load / cap
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
    rows: Sequence[Row],
    marks: Mapping[int, int],
    judge: _Judge,
    i: int,
) -> Decision:
    """``strategies.run_successor`` for one customer."""
    bits = marks[i]
    current, former = bool(bits & CURRENT), bool(bits & FORMER)
    row = rows[i]
    manager = Manager(*row)
    weight = tier.weight
    load = manager.workload - (weight if current else 0)
    s = _Candidate(i, manager, load, judge.score(row, current, former), current, former)
    if bits & EXCLUDED:
        return _rendered(customer, rows, tier, rules, options, POOL, ("excluded_successor",))
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
    if not (intake > 0 and _tier_room(manager.tier_intake, tier.code, rules) > 0):
        violations.append("intake_cap")
    for rule in rules.eligibility:
        applies = all(_holds(c, customer, manager, s) for c in rule.when)
        if applies and not all(_holds(c, customer, manager, s) for c in rule.conditions):
            violations.append(rule.id)
    if violations:
        codes = tuple(f"violates:{v}" for v in violations)
        return _rendered(
            customer, rows, tier, rules, options, POOL, ("successor_ineligible", *codes)
        )
    cap = manager.capacity
    fit = max(0, min(1, (cap - s.load) // weight)) if cap > 0 else 0
    taken = fit if not options.force else 1
    if not taken:
        return _rendered(
            customer, rows, tier, rules, options, POOL, ("no_capacity", "violates:capacity")
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


def _holds(cond: Condition, customer: Customer, manager: Manager, c: _Candidate) -> bool:
    return check_condition(cond, customer, manager, is_current=c.is_current, is_former=c.is_former)[
        0
    ]


def _pooled(
    customer: Customer,
    tier: Tier,
    rules: RuleSet,
    options: PlanOptions,
    rows: Sequence[Row],
    marks: Mapping[int, int],
    reasons: tuple[str, ...],
    judge: _Judge,
) -> Decision:
    """A customer nobody could take: ``planner.route_to_fallback`` for one customer."""
    placement = rules.placement
    capped_anywhere = bool(placement.tier_caps) or any(r[_INTAKE] is not None for r in rows)
    if not (capped_anywhere or any(r[_OFF_HOURS] for r in rows)):
        return _rendered(customer, rows, tier, rules, options, POOL, reasons)

    def has_room(intake_room: int | None, tier_intake: tuple[tuple[str, int, int], ...]) -> bool:
        intake = NO_CAP if intake_room is None else intake_room
        return intake > 0 and _tier_room(tier_intake, tier.code, rules) > 0

    # Eligible but for intake caps (working hours count), and eligible but for working hours.
    but_caps: set[int] = set()
    blocked_by_caps = False
    but_hours = False
    for i, row in enumerate(rows):
        (_, level, capacity, _, status, accepting, _, _, _, _, absent, intake, room, _, off) = row
        bits = marks.get(i, 0)
        if not (
            status == "active"
            and accepting
            and not absent
            and not bits & EXCLUDED
            and capacity > 0
            and level >= tier.min_manager_level
        ):
            continue
        if not judge.eligible(row, bool(bits & CURRENT), bool(bits & FORMER)):
            continue
        fits = has_room(intake, room)
        if not off:
            but_caps.add(i)
            blocked_by_caps |= not fits
        but_hours |= fits
    if not blocked_by_caps:
        if reasons == ("no_eligible_manager",) and but_hours:
            reasons = ("outside_hours",)
        return _rendered(customer, rows, tier, rules, options, POOL, reasons)
    f = next((i for i, bits in marks.items() if bits & FALLBACK), None)
    if f is not None and f in but_caps:
        row = rows[f]
        bits = marks[f]
        current, former = bool(bits & CURRENT), bool(bits & FORMER)
        load = row[_WORKLOAD] - (tier.weight if current else 0)
        c = _Candidate(f, Manager(*row), load, judge.score(row, current, former), current, former)
        m = c.manager
        intake = NO_CAP if m.intake_room is None else m.intake_room
        if intake > 0 and min(1, (m.capacity - c.load) // tier.weight, intake) > 0:
            reasons = ("fallback_owner", "intake_cap")
            return _placed(customer, tier, rules, options, c, c.pref, reasons, forced=False)
    return _rendered(customer, rows, tier, rules, options, POOL, ("intake_cap",))


def _rendered(
    customer: Customer,
    rows: Sequence[Row],
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
    managers = [Manager(*row) for row in rows]
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
