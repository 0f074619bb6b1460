"""The prepared problem: input facts checked and laid out in engine order.

Managers are sorted by id (ties always go to the lower id); customers keep their input rows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from uuid import UUID

import numpy as np

from app.engine.columns import CustomerColumns
from app.engine.evaluation import Evaluator
from app.engine.facts import Customer, EngineError, Manager, Tier
from app.engine.rules import RuleSet

Customers = Sequence[Customer] | CustomerColumns

NO_CAP = np.iinfo(np.int64).max
"""The intake room of a manager without intake caps."""

SCORE_LIMIT = 1e15
"""Largest total of preference weights the engine adds up: far beyond what a rule set may hold
(`rules.MAX_RULES` × `rules.MAX_WEIGHT`), and still exact in float64 arithmetic. Beyond it,
scores lose the utilization term, and two weights near the float maximum add up to infinity,
on which the fill loops cannot compare scores."""


@dataclass(eq=False)
class Problem:
    """Input facts in engine order, plus the derived per-customer and per-manager arrays."""

    cols: CustomerColumns
    managers: list[Manager]  # sorted by id
    given_order: list[int]  # engine index of the i-th given manager
    tiers: dict[str, Tier]
    rules: RuleSet
    evaluator: Evaluator
    weight: np.ndarray  # per customer, int32
    rank: np.ndarray  # per customer, int32
    min_level: np.ndarray  # per customer, int32
    owner: np.ndarray  # per customer: engine index of the current owner, -1 if none/unknown
    level: np.ndarray  # per manager
    capacity: np.ndarray  # per manager, int64
    workload: np.ndarray  # per manager as given, int64
    active: np.ndarray
    accepting: np.ndarray
    available: np.ndarray  # not on an absence now
    intake_room: np.ndarray  # per manager, int64: new customers still allowed (NO_CAP: no cap)
    not_excluded: np.ndarray
    index_of: dict[UUID, int]
    tier_room: np.ndarray  # (manager, tier code of the columns): room under the tier caps
    rotation_weight: np.ndarray  # per manager, int64
    on_hours: np.ndarray  # per manager: within working hours (or not asked)

    @property
    def receivable(self) -> np.ndarray:
        """Managers that may receive customers at all (status, flag, absence, working hours,
        intake cap, exclusion, capacity > 0)."""
        return (
            self.active
            & self.accepting
            & self.available
            & self.on_hours
            & (self.intake_room > 0)
            & self.not_excluded
            & (self.capacity > 0)
        )

    def tier_room_of(self, row: int) -> np.ndarray:
        """Per manager, the room under the caps of the row's tier (NO_CAP: uncapped)."""
        return self.tier_room[:, int(self.cols.tier[row])]

    def former(self, row: int) -> tuple[int, ...]:
        """Engine indices of the row's former owners that are among the managers."""
        owners = self.cols.former_owners.get(row, ())
        return tuple(
            sorted({self.index_of[f.manager_id] for f in owners if f.manager_id in self.index_of})
        )

    def relations(self, row: int) -> tuple[int, tuple[int, ...]]:
        """(current owner index or -1, former owner indices) as the rules see them."""
        former = self.former(row) if self.evaluator.reads_former else ()
        return int(self.owner[row]), former

    def customer_ids_sorted(self) -> np.ndarray:
        """Row order by customer id (a no-op check when the columns are already sorted)."""
        ids = self.cols.ids
        if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
            return np.arange(len(ids))
        return np.argsort(ids, kind="stable")


def prepare(
    customers: Customers,
    managers: Sequence[Manager],
    tiers: Sequence[Tier],
    rules: RuleSet,
    exclude: Collection[UUID] = frozenset(),
) -> Problem:
    """Check the input and build the Problem."""
    total = sum((abs(p.weight) for p in rules.preferences), 0.0)  # inf on overflow
    if not total <= SCORE_LIMIT:  # also NaN
        raise EngineError(
            f"the preference weights add up to {total:g} points, more than the engine can score "
            f"({SCORE_LIMIT:g}); store a rule set with smaller weights"
        )
    cols = (
        customers
        if isinstance(customers, CustomerColumns)
        else CustomerColumns.from_customers(list(customers))
    )
    tier_map: dict[str, Tier] = {}
    for tier in tiers:
        if tier.code in tier_map:
            raise EngineError(f"tier {tier.code!r} is given twice")
        tier_map[tier.code] = tier
    used = np.flatnonzero(np.bincount(cols.tier, minlength=len(cols.tier_codes)))
    unknown = [cols.tier_codes[c] for c in used if cols.tier_codes[c] not in tier_map]
    if unknown:
        raise EngineError(f"customers refer to unknown tier(s): {', '.join(sorted(unknown))}")
    ordered = sorted(range(len(managers)), key=lambda i: managers[i].id)
    engine_managers = [managers[i] for i in ordered]
    index_of = {m.id: i for i, m in enumerate(engine_managers)}
    if len(index_of) != len(managers):
        raise EngineError("a manager is given twice")
    given_order = [0] * len(managers)
    for engine_index, given_index in enumerate(ordered):
        given_order[given_index] = engine_index

    def per_tier(attr: str) -> np.ndarray:
        table = np.array(
            [getattr(tier_map[c], attr) if c in tier_map else 0 for c in cols.tier_codes] or [0],
            np.int32,  # per-customer columns stay small at a million rows
        )
        return table[cols.tier]

    owner_map = np.array(
        [index_of.get(m, -1) for m in cols.owner_ids] + [-1], np.int32
    )  # code -1 maps to the last entry
    owner = owner_map[cols.owner]
    return Problem(
        cols=cols,
        managers=engine_managers,
        given_order=given_order,
        tiers=tier_map,
        rules=rules,
        evaluator=Evaluator(rules, cols, engine_managers),
        weight=per_tier("weight"),
        rank=per_tier("rank"),
        min_level=per_tier("min_manager_level"),
        owner=owner,
        level=np.array([m.level for m in engine_managers], np.int64),
        capacity=np.array([m.capacity for m in engine_managers], np.int64),
        workload=np.array([m.workload for m in engine_managers], np.int64),
        active=np.array([m.status == "active" for m in engine_managers], bool),
        accepting=np.array([m.accepting_new for m in engine_managers], bool),
        available=np.array([not m.absent for m in engine_managers], bool),
        intake_room=np.array(
            [NO_CAP if m.intake_room is None else m.intake_room for m in engine_managers],
            np.int64,
        ),
        not_excluded=np.array([m.id not in exclude for m in engine_managers], bool),
        index_of=index_of,
        tier_room=tier_rooms(engine_managers, cols.tier_codes, rules),
        rotation_weight=np.array([m.rotation_weight for m in engine_managers], np.int64),
        on_hours=np.array([not m.off_hours for m in engine_managers], bool),
    )


def tier_rooms(
    managers: Sequence[Manager], tier_codes: Sequence[str], rules: RuleSet
) -> np.ndarray:
    """(manager, tier) room under the rule set's tier caps, from the managers' ledger counts.

    NO_CAP where a tier has no cap. (A tier's fallback owner is held to them too in ordinary
    placement; only the fallback step passes them, see ``planner.route_to_fallback``.)"""
    room = np.full((len(managers), max(len(tier_codes), 1)), NO_CAP, np.int64)
    caps = rules.placement.tier_caps
    if not caps:
        return room
    column = {code: j for j, code in enumerate(tier_codes) if code in caps}
    for i, manager in enumerate(managers):
        received = {code: (day, week) for code, day, week in manager.tier_intake}
        for code, j in column.items():
            cap = caps[code]
            day, week = received.get(code, (0, 0))
            if cap.max_new_per_day is not None:
                room[i, j] = min(room[i, j], cap.max_new_per_day - day)
            if cap.max_new_per_week is not None:
                room[i, j] = min(room[i, j], cap.max_new_per_week - week)
    return room
