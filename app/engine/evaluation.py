"""Vectorised rule evaluation over (customer class × manager).

Each condition reads at most two fields (its field and a reference). It is evaluated once per
pair of distinct values into a small truth table; rows of that table are then gathered with
numpy by value codes. Customers that agree on every value the rules read (and on tier) are
interchangeable and form one class; a class's row over all managers costs a few gathers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.engine.columns import CustomerColumns
from app.engine.facts import Customer, Manager
from app.engine.rules import RELATION_FIELDS, Condition, Preference, Rule, RuleSet, compare

EVERY_MANAGER = -2
"""`current` value: every manager is taken as the customer's current owner (ownership checks)."""


def manager_value(manager: Manager, attr: str) -> Any:
    """A plain manager attribute, or the `utilization` virtual field."""
    if attr == "utilization":
        return manager.workload / manager.capacity if manager.capacity > 0 else None
    return getattr(manager, attr)


def fact_value(
    path: str, customer: Customer, manager: Manager, *, is_current: bool, is_former: bool
) -> Any:
    """The value of a field path for one (customer, manager) pair."""
    side, _, attr = path.partition(".")
    if side == "customer":
        return getattr(customer, attr)
    if attr == "is_current_owner":
        return is_current
    if attr == "is_former_owner":
        return is_former
    return manager_value(manager, attr)


def check_condition(
    cond: Condition, customer: Customer, manager: Manager, *, is_current: bool, is_former: bool
) -> tuple[bool, Any, Any]:
    """Evaluate one condition on plain facts; returns (holds, left value, right value)."""
    left = fact_value(cond.field, customer, manager, is_current=is_current, is_former=is_former)
    ref = cond.reference
    if ref is None:
        right = cond.literal()
    else:
        right = fact_value(ref, customer, manager, is_current=is_current, is_former=is_former)
    return compare(cond.op, left, right), left, right


@dataclass(slots=True)
class _Compiled:
    cond: Condition
    axes: tuple[tuple[str, str], ...]  # (side, attr) per table dimension: field, then reference
    table: np.ndarray  # bool truth table over the axes' value codes

    @property
    def customer_only(self) -> bool:
        return all(side == "customer" for side, _ in self.axes)

    @property
    def manager_only(self) -> bool:
        return all(side == "manager" and a not in RELATION_FIELDS for side, a in self.axes)


class Evaluator:
    """Compiled rules for one set of customer columns and managers (in engine order)."""

    def __init__(self, rules: RuleSet, cols: CustomerColumns, managers: Sequence[Manager]) -> None:
        self.rules = rules
        self.cols = cols
        self.managers = managers
        self._cdomains: dict[str, tuple[np.ndarray, list[Any]]] = {}
        self._mdomains: dict[str, tuple[np.ndarray, list[Any]]] = {}
        self._compiled: dict[int, _Compiled] = {}
        self._mvectors: dict[int, np.ndarray] = {}
        reads = rules.reads()
        self.reads_current = "manager.is_current_owner" in reads
        self.reads_former = "manager.is_former_owner" in reads
        for rule in (*rules.eligibility, *rules.preferences):
            for cond in (*rule.when, *rule.conditions):
                self._compile(cond)

    # -- domains ------------------------------------------------------------------------------
    def _cdomain(self, attr: str) -> tuple[np.ndarray, list[Any]]:
        if attr not in self._cdomains:
            self._cdomains[attr] = self.cols.domain(attr)
        return self._cdomains[attr]

    def _mdomain(self, attr: str) -> tuple[np.ndarray, list[Any]]:
        if attr in RELATION_FIELDS:
            return np.zeros(len(self.managers), np.int32), [False, True]
        if attr not in self._mdomains:
            index: dict[Any, int] = {}
            codes = np.fromiter(
                (index.setdefault(manager_value(m, attr), len(index)) for m in self.managers),
                np.int32,
                count=len(self.managers),
            )
            self._mdomains[attr] = codes, list(index)
        return self._mdomains[attr]

    def _domain(self, side: str, attr: str) -> list[Any]:
        return (self._cdomain(attr) if side == "customer" else self._mdomain(attr))[1]

    def _compile(self, cond: Condition) -> None:
        key = id(cond)
        if key in self._compiled:
            return
        side, _, attr = cond.field.partition(".")
        axes = [(side, attr)]
        ref = cond.reference
        if ref is not None:
            rside, _, rattr = ref.partition(".")
            axes.append((rside, rattr))
        left = self._domain(*axes[0])
        if ref is None:
            literal = cond.literal()
            table = np.fromiter((compare(cond.op, v, literal) for v in left), bool, len(left))
        else:
            right = self._domain(*axes[1])
            table = np.fromiter(
                (compare(cond.op, a, b) for a in left for b in right), bool, len(left) * len(right)
            ).reshape(len(left), len(right))
        self._compiled[key] = _Compiled(cond, tuple(axes), table)

    # -- per-customer facts for classes ---------------------------------------------------------
    def class_key_columns(self, rows: np.ndarray) -> list[np.ndarray]:
        """Integer columns (over `rows`) on which the rules' outcome for a customer depends.

        Customer-only conditions contribute their boolean outcome; conditions mixing customer
        and manager fields contribute the customer value's code.
        """
        columns: list[np.ndarray] = []
        seen_attrs: set[str] = set()
        for comp in self._compiled.values():
            if comp.customer_only:
                columns.append(self._customer_outcome(comp, rows).astype(np.int64))
            else:
                for side, attr in comp.axes:
                    if side == "customer" and attr not in seen_attrs:
                        seen_attrs.add(attr)
                        columns.append(self._cdomain(attr)[0][rows].astype(np.int64))
        return columns

    def _customer_outcome(self, comp: _Compiled, rows: np.ndarray) -> np.ndarray:
        index = tuple(self._cdomain(attr)[0][rows] for _, attr in comp.axes)
        return comp.table[index]

    # -- rows over managers -------------------------------------------------------------------
    def _evaluate(
        self, comp: _Compiled, row: int, current: int, former: Sequence[int]
    ) -> np.ndarray | bool:
        if comp.manager_only:
            vec = self._mvectors.get(id(comp.cond))
            if vec is None:
                vec = comp.table[tuple(self._mdomain(a)[0] for _, a in comp.axes)]
                self._mvectors[id(comp.cond)] = vec
            return vec
        index: list[Any] = []
        for side, attr in comp.axes:
            if side == "customer":
                index.append(int(self._cdomain(attr)[0][row]))
            elif attr == "is_current_owner":
                rel = np.zeros(len(self.managers), np.int32)
                if current == EVERY_MANAGER:
                    rel[:] = 1
                elif current >= 0:
                    rel[current] = 1
                index.append(rel)
            elif attr == "is_former_owner":
                rel = np.zeros(len(self.managers), np.int32)
                if len(former):
                    rel[np.asarray(former, np.int64)] = 1
                index.append(rel)
            else:
                index.append(self._mdomain(attr)[0])
        return comp.table[tuple(index)]

    def _all(
        self, conds: Sequence[Condition], row: int, current: int, former: Sequence[int]
    ) -> np.ndarray:
        out = np.ones(len(self.managers), bool)
        for cond in conds:
            out &= self._evaluate(self._compiled[id(cond)], row, current, former)
        return out

    def rule_outcome(
        self, rule: Rule, row: int, current: int, former: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(applies, holds) over managers for one customer row."""
        applies = self._all(rule.when, row, current, former)
        holds = self._all(rule.conditions, row, current, former)
        return applies, holds

    def row(self, row: int, current: int, former: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(passes every rule-set eligibility rule, preference score) over managers."""
        ok = np.ones(len(self.managers), bool)
        for rule in self.rules.eligibility:
            applies, holds = self.rule_outcome(rule, row, current, former)
            ok &= ~applies | holds
        score = np.zeros(len(self.managers), np.float64)
        for pref in self.rules.preferences:
            applies, holds = self.rule_outcome(pref, row, current, former)
            score += pref.weight * (applies & holds)
        return ok, score

    def pair_scores(
        self, rows: np.ndarray, managers: np.ndarray, current: np.ndarray, former: np.ndarray
    ) -> np.ndarray:
        """Preference score of each (rows[i], managers[i]) pair, vectorised over pairs.

        `current` / `former` say whether managers[i] is the row's current / a former owner.
        """
        score = np.zeros(len(rows), np.float64)
        for pref in self.rules.preferences:
            holds = np.ones(len(rows), bool)
            for cond in (*pref.when, *pref.conditions):
                comp = self._compiled[id(cond)]
                index: list[np.ndarray] = []
                for side, attr in comp.axes:
                    if side == "customer":
                        index.append(self._cdomain(attr)[0][rows])
                    elif attr == "is_current_owner":
                        index.append(current.astype(np.int32))
                    elif attr == "is_former_owner":
                        index.append(former.astype(np.int32))
                    else:
                        index.append(self._mdomain(attr)[0][managers])
                holds &= comp.table[tuple(index)]
            score += pref.weight * holds
        return score

    def preference_matches(
        self, pref: Preference, customer: Customer, manager: Manager, *, current: bool, former: bool
    ) -> bool:
        """Whether one preference holds for one pair (plain-Python path, for explanations)."""
        return all(
            check_condition(c, customer, manager, is_current=current, is_former=former)[0]
            for c in (*pref.when, *pref.conditions)
        )
