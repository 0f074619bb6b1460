"""The placement guard: may this manager own this customer, and if not, which rules say no.

One function decides for one (customer, manager) pair, for every path that gives a customer an
owner or changes what an owner may hold (manual moves, imports, webhooks, handover overrides)
and for the compliance check of current owners (violations, ``baton check``). It reads the
same rule objects and the same comparison as the engine's vectorised evaluation, so a plan the
engine makes always passes it (a property test holds them to that).

Two questions, two modes:
- ``intake``: may the customer be *given* to the manager now? Every built-in hard rule
  (tier minimum level, manager active, accepting new customers, not absent, within working
  hours when asked, intake cap — the manager's and the tier's —, capacity) and the rule set's
  eligibility rules.
- ``ownership``: may the manager *keep* the customer? Tier minimum level, the manager has not
  departed, and the rule set's eligibility rules. Capacity and accepting-new are about taking
  more, not about what is held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from app.engine.classes import build_classes
from app.engine.evaluation import EVERY_MANAGER, check_condition
from app.engine.facts import Customer, Manager, Tier
from app.engine.problem import Customers, prepare
from app.engine.rules import RuleSet

Mode = Literal["intake", "ownership"]


@dataclass(frozen=True, slots=True)
class Violation:
    """A hard rule the pair breaks: the rule's id and what is wrong, in words."""

    rule: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """``{"rule", "message"}`` as problem responses and the violations list show it."""
        return {"rule": self.rule, "message": self.message}


def placement_violations(
    customer: Customer,
    manager: Manager,
    tier: Tier,
    rules: RuleSet,
    *,
    mode: Mode = "intake",
) -> list[Violation]:
    """The hard rules broken by ``manager`` owning ``customer`` ([] means allowed).

    In ``intake`` mode ``manager.workload`` is the workload *before* the customer arrives (a
    customer the manager already owns counts once); in ``ownership`` mode the customer is
    assumed to be held already.
    """
    out: list[Violation] = []
    if manager.level < tier.min_manager_level:
        out.append(
            Violation(
                "tier_min_level",
                f"tier '{tier.code}' needs level ≥ {tier.min_manager_level}, "
                f"the manager is level {manager.level}",
            )
        )
    if mode == "intake":
        if manager.status != "active":
            out.append(Violation("manager_active", f"the manager is {manager.status}"))
        elif not manager.accepting_new and customer.manager_id != manager.id:
            out.append(Violation("manager_accepting", "the manager is not accepting new customers"))
        if manager.absent and customer.manager_id != manager.id:
            out.append(Violation("absent", "the manager is absent"))
        if manager.off_hours and customer.manager_id != manager.id:
            out.append(Violation("outside_hours", "the manager is outside their working hours"))
        if customer.manager_id != manager.id and (
            (manager.intake_room is not None and manager.intake_room <= 0)
            or tier_room(manager, tier.code, rules) <= 0
        ):
            out.append(
                Violation(
                    "intake_cap",
                    "the manager has received as many new customers as "
                    "their intake caps allow for now",
                )
            )
        after = manager.workload + (0 if customer.manager_id == manager.id else tier.weight)
        if after > manager.capacity:
            out.append(
                Violation(
                    "capacity",
                    f"workload would be {after} over a capacity of {manager.capacity}",
                )
            )
    elif manager.status == "departed":
        out.append(Violation("manager_active", "the owner has departed"))
    is_current = customer.manager_id == manager.id or mode == "ownership"
    is_former = any(f.manager_id == manager.id for f in customer.former_owners)
    for rule in rules.eligibility:
        applies = all(
            check_condition(c, customer, manager, is_current=is_current, is_former=is_former)[0]
            for c in rule.when
        )
        if not applies:
            continue
        for cond in rule.conditions:
            holds, left, right = check_condition(
                cond, customer, manager, is_current=is_current, is_former=is_former
            )
            if not holds:
                out.append(
                    Violation(
                        rule.id,
                        (rule.description + ": " if rule.description else "")
                        + f"{cond.describe()} does not hold ({_show(left)} vs {_show(right)})",
                    )
                )
                break
    return out


# What giving a customer to a manager changes in the facts the rules can read: the customer's
# owner and when it last moved, whether the manager is its current owner, the manager's load.
MOVE_FACTS = frozenset(
    {
        "customer.manager_id",
        "customer.last_moved_at",
        "manager.is_current_owner",
        "manager.workload",
        "manager.utilization",
    }
)


def intake_implies_ownership(rules: RuleSet) -> bool:
    """Whether an owner ``intake`` mode allows is an owner ``ownership`` mode keeps.

    ``ownership`` checks the tier minimum level (``intake`` checks it too), that the manager
    has not departed (``intake`` wants them active) and the eligibility rules. Those rules give
    the same answer before and after the move unless one reads a fact the move itself changes
    (``MOVE_FACTS``); when none does, a customer moved to an owner the guard allowed holds no
    violation, and callers that write many such moves need not check them again.
    """
    return not any(rule.reads() & MOVE_FACTS for rule in rules.eligibility)


def tier_room(manager: Manager, tier: str, rules: RuleSet) -> float:
    """New customers of ``tier`` the manager may still receive under the rule set's tier caps
    (inf: uncapped, or the tier's fallback owner, who takes what capped managers cannot)."""
    cap = rules.placement.tier_caps.get(tier)
    if cap is None or manager.id == rules.placement.fallback_for(tier):
        return float("inf")
    day, week = next(((d, w) for code, d, w in manager.tier_intake if code == tier), (0, 0))
    room = float("inf")
    if cap.max_new_per_day is not None:
        room = min(room, cap.max_new_per_day - day)
    if cap.max_new_per_week is not None:
        room = min(room, cap.max_new_per_week - week)
    return room


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return "none" if value is None else str(value)


class BrokenRules(NamedTuple):
    """Per customer row, the first hard rule its owner breaks: a code into ``rules``, or -1."""

    first: np.ndarray
    rules: tuple[str, ...]

    @property
    def violating(self) -> np.ndarray:
        """Rows whose owner breaks a hard rule."""
        return self.first >= 0


def owners_violating(
    customers: Customers,
    managers: Sequence[Manager],
    tiers: Sequence[Tier],
    rules: RuleSet,
) -> BrokenRules:
    """Which owners break a hard rule in ``ownership`` mode, for a whole book at once.

    The vectorised form of ``placement_violations(..., mode="ownership")`` (first rule in
    the same order): the rule set is evaluated once per customer class (customers the rules
    cannot tell apart) over all managers, then read at each row's owner. Rows whose owner is
    not among ``managers`` (or who have none) break nothing. Former owners count as far as
    the customers carry them.
    """
    names = ("tier_min_level", "manager_active", *(r.id for r in rules.eligibility))
    problem = prepare(customers, managers, tiers, rules)
    owner = problem.owner
    rows = problem.customer_ids_sorted()
    rows = rows[owner[rows] >= 0]
    first = np.full(len(problem.cols), -1, np.int16)
    if not len(rows):
        return BrokenRules(first, names)
    departed = np.array([m.status == "departed" for m in problem.managers], bool)
    held_by = owner[rows]
    first[rows[departed[held_by]]] = 1
    first[rows[problem.level[held_by] < problem.min_level[rows]]] = 0
    if not rules.eligibility:
        return BrokenRules(first, names)
    classes = build_classes(problem, rows, ignore_current=True)
    for c in range(len(classes)):
        members = classes.members(c)
        rep = int(classes.rep[c])
        _, former = problem.relations(rep)
        for code, rule in enumerate(rules.eligibility, start=2):
            # ownership mode: every manager is taken as the owner of what it holds
            applies, holds = problem.evaluator.rule_outcome(rule, rep, EVERY_MANAGER, former)
            broken = members[(applies & ~holds)[owner[members]] & (first[members] < 0)]
            first[broken] = code
    return BrokenRules(first, names)
