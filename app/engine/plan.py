"""The plan the engine returns: decisions (built lazily), manager loads and balance metrics."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, overload
from uuid import UUID

import numpy as np

from app.engine.columns import uuid_at, uuids_to_s16
from app.engine.explain import explain_decision
from app.engine.outcome import KEEP, POOL, Outcome

if TYPE_CHECKING:
    from app.engine.problem import Problem


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one customer goes; `manager_id` None means the pool."""

    customer_id: UUID
    from_manager_id: UUID | None
    manager_id: UUID | None
    score: float
    reasons: tuple[str, ...]
    explanation: dict[str, Any] | None
    forced: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (UUIDs as strings)."""
        return {
            "customer_id": str(self.customer_id),
            "from_manager_id": _str(self.from_manager_id),
            "manager_id": _str(self.manager_id),
            "score": self.score,
            "reasons": list(self.reasons),
            "explanation": self.explanation,
        }


@dataclass(frozen=True, slots=True)
class ManagerLoad:
    """A manager's workload and utilization before and after the plan (None: capacity 0)."""

    manager_id: UUID
    workload_before: int
    workload_after: int
    utilization_before: float | None
    utilization_after: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "manager_id": str(self.manager_id),
            "workload_before": self.workload_before,
            "workload_after": self.workload_after,
            "utilization_before": self.utilization_before,
            "utilization_after": self.utilization_after,
        }


@dataclass(frozen=True, slots=True)
class OverTarget:
    """A manager a rebalance left above the target utilization, and why.

    `reason`: ``customers_held`` when every customer it still has is pinned or changed owner
    within ``min_days_since_move``; ``no_room_elsewhere`` when some could move but no manager
    allowed to take them had room under the target.
    """

    manager_id: UUID
    utilization_after: float
    reason: str
    pinned: int
    recently_moved: int
    movable: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "manager_id": str(self.manager_id),
            "utilization_after": self.utilization_after,
            "reason": self.reason,
            "pinned": self.pinned,
            "recently_moved": self.recently_moved,
            "movable": self.movable,
        }


@dataclass(frozen=True, slots=True)
class PlanMetrics:
    """Balance after the plan, over active managers with capacity > 0.

    `lower_bound` is a proven lower bound on the peak utilization (optimal strategy only);
    `proven_optimal` says whether the peak was proven minimal (None: not an optimising
    strategy). `gap` (peak - lower_bound) and `solver` are diagnostics, not part of `to_dict`.
    """

    peak_utilization: float
    utilization_spread: float
    utilization_stddev: float
    moved: int
    pooled: int
    lower_bound: float | None = None
    proven_optimal: bool | None = None
    gap: float | None = None
    solver: str | None = None
    fairness: float | None = None
    """`weighted_round_robin`: Jain's index of received customers per rotation weight over
    the rotation pools' managers in the period (1.0: exactly by weight)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "peak_utilization": self.peak_utilization,
            "utilization_spread": self.utilization_spread,
            "utilization_stddev": self.utilization_stddev,
            "moved": self.moved,
            "pooled": self.pooled,
            "lower_bound": self.lower_bound,
            "proven_optimal": self.proven_optimal,
            "fairness": self.fairness,
        }


@dataclass(frozen=True, eq=False)
class Moves:
    """Customers whose owner changes. Ids are S16 columns; the nil UUID (b"") means the pool."""

    rows: np.ndarray
    customer_ids: np.ndarray
    manager_ids: np.ndarray
    from_manager_ids: np.ndarray

    def as_uuids(self) -> tuple[list[UUID], list[UUID | None]]:
        """(customer ids, new manager ids with None for the pool) as Python lists.

        Built once (a rebalance moves 100k customers: 200k UUID objects, a few hundred ms),
        so the service can have them built in the engine's worker thread."""
        return self._uuids

    @cached_property
    def _uuids(self) -> tuple[list[UUID], list[UUID | None]]:
        customers = [uuid_at(self.customer_ids, i) for i in range(len(self.rows))]
        managers = [
            None if not self.manager_ids[i] else uuid_at(self.manager_ids, i)
            for i in range(len(self.rows))
        ]
        return customers, managers


def _str(value: UUID | None) -> str | None:
    return None if value is None else str(value)


class Plan:
    """A plan: one decision per input customer (lazily built), loads, metrics.

    Decisions are in input order: `plan.decision(i)` is about the i-th input customer.
    """

    def __init__(
        self,
        *,
        strategy: str,
        problem: Problem,
        outcome: Outcome,
        load_before_plan: np.ndarray,
        load_after: np.ndarray,
        explain: str,
        penalty: float,
        lower_bound: float | None = None,
        proven_optimal: bool | None = None,
        solver: str | None = None,
        successor: int | None = None,
        over_target: Sequence[OverTarget] = (),
        fairness: float | None = None,
    ) -> None:
        self.strategy = strategy
        self.rotation: dict[str, UUID] = {}  # round robin: pool -> last manager it gave to
        # weighted round robin: pool -> manager -> customers received in the period
        self.rotation_counts: dict[str, dict[UUID, int]] = {}
        self.over_target = list(over_target)  # rebalance only: managers it could not bring down
        self.successor = successor  # engine index of the named successor, if any
        self.explain = explain
        self.penalty = penalty
        self._problem = problem
        self._outcome = outcome
        self._moves: Moves | None = None
        self.load_before_plan = load_before_plan  # given workload minus customers up for placement
        self.load_after = load_after
        p = problem
        ids = [m.id for m in p.managers]
        self.managers: list[ManagerLoad] = []
        for engine_index in p.given_order:
            cap = int(p.capacity[engine_index])
            before = int(p.workload[engine_index])
            after = int(load_after[engine_index])
            self.managers.append(
                ManagerLoad(
                    manager_id=ids[engine_index],
                    workload_before=before,
                    workload_after=after,
                    utilization_before=before / cap if cap > 0 else None,
                    utilization_after=after / cap if cap > 0 else None,
                )
            )
        self._manager_s16 = np.concatenate(
            [uuids_to_s16(ids) if ids else np.empty(0, "S16"), np.zeros(3, "S16")]
        )  # trailing nil entries so POOL (-1) and KEEP (-3) index a nil id
        counted = p.active & (p.capacity > 0)
        util = load_after[counted] / p.capacity[counted]
        moves = self._changed()
        peak = float(util.max()) if util.size else 0.0
        self.metrics = PlanMetrics(
            peak_utilization=peak,
            utilization_spread=float(util.max() - util.min()) if util.size else 0.0,
            utilization_stddev=float(util.std()) if util.size else 0.0,
            moved=int(np.count_nonzero(moves & (outcome.to >= 0))),
            pooled=int(np.count_nonzero(outcome.to == POOL)),
            lower_bound=lower_bound,
            proven_optimal=proven_optimal,
            gap=None if lower_bound is None else max(0.0, peak - lower_bound),
            solver=solver,
            fairness=fairness,
        )
        self.decisions: Sequence[Decision] = _Decisions(self)

    @property
    def problem(self) -> Problem:
        """The prepared input (for explanations)."""
        return self._problem

    @property
    def outcome(self) -> Outcome:
        """Per-customer results as arrays (engine manager indices)."""
        return self._outcome

    def __len__(self) -> int:
        return len(self._outcome.to)

    def _changed(self) -> np.ndarray:
        to = self._outcome.to
        had_owner = self._problem.cols.owner >= 0
        return np.where(to >= 0, to != self._problem.owner, (to == POOL) & had_owner)

    def manager_id_at(self, engine_index: int) -> UUID | None:
        """Manager id of an engine index (None for the pool)."""
        return self._problem.managers[engine_index].id if engine_index >= 0 else None

    def decision(self, i: int) -> Decision:
        """The decision about the i-th input customer."""
        p, o = self._problem, self._outcome
        to = int(o.to[i])
        from_id = p.cols.owner_id(i)
        manager_id = from_id if to == KEEP else self.manager_id_at(to)
        return Decision(
            customer_id=p.cols.customer_id(i),
            from_manager_id=from_id,
            manager_id=manager_id,
            score=round(float(o.score[i]), 6),
            reasons=o.reasons[int(o.reason[i])],
            explanation=None if self.explain == "none" else explain_decision(self, i),
            forced=("capacity",) if o.forced[i] else (),
        )

    def iter_decisions(self) -> Iterator[Decision]:
        """Every decision, in input order, built one at a time."""
        for i in range(len(self)):
            yield self.decision(i)

    def moves(self) -> Moves:
        """Customers whose owner changes (to another manager or to the pool); built once."""
        if self._moves is None:
            self._moves = self._find_moves()
        return self._moves

    def _find_moves(self) -> Moves:
        rows = np.flatnonzero(self._changed())
        cols = self._problem.cols
        owner_s16 = np.concatenate(
            [uuids_to_s16(cols.owner_ids) if cols.owner_ids else np.empty(0, "S16"), [b""]]
        ).astype("S16")
        return Moves(
            rows=rows,
            customer_ids=cols.ids[rows],
            manager_ids=self._manager_s16[self._outcome.to[rows]],
            from_manager_ids=owner_s16[cols.owner[rows]],
        )

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """The plan as JSON-ready data; `limit` caps the number of decisions included."""
        count = len(self) if limit is None else min(limit, len(self))
        return {
            "strategy": self.strategy,
            "decisions": [self.decision(i).to_dict() for i in range(count)],
            "managers": [m.to_dict() for m in self.managers],
            "metrics": self.metrics.to_dict(),
            "over_target": [o.to_dict() for o in self.over_target],
        }


class _Decisions(Sequence[Decision]):
    """A read-only, lazy sequence of a plan's decisions."""

    def __init__(self, plan: Plan) -> None:
        self._plan = plan

    def __len__(self) -> int:
        return len(self._plan)

    @overload
    def __getitem__(self, index: int) -> Decision: ...
    @overload
    def __getitem__(self, index: slice) -> list[Decision]: ...
    def __getitem__(self, index: int | slice) -> Decision | list[Decision]:
        if isinstance(index, slice):
            return [self._plan.decision(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._plan.decision(index)

    def __iter__(self) -> Iterator[Decision]:
        return self._plan.iter_decisions()
