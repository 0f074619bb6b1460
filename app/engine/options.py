"""Options of the two entry points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from app.vocabulary import Strategy

Explain = Literal["none", "basic", "full"]

DEFAULT_UTILIZATION_PENALTY = 50.0
"""Score points per unit of utilization: one preference point is worth 2 pp of utilization."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanOptions:
    """How `plan_assignments` places customers.

    `utilization_penalty` trades balance against preferences: a manager's score for a customer
    is the preference score minus `utilization_penalty × utilization after the move`.
    """

    strategy: Strategy = Strategy.BALANCED
    now: datetime
    exclude_manager_ids: frozenset[UUID] = frozenset()
    successor_id: UUID | None = None
    force: bool = False
    explain: Explain = "basic"
    utilization_penalty: float = DEFAULT_UTILIZATION_PENALTY
    solver_node_limit: int = 20_000
    """`optimal`: branch-and-bound nodes each MILP solve may explore (work, not time, so the
    same input gives the same plan); past it the best plan found is kept, not proven optimal."""
    rotation: tuple[tuple[str, UUID], ...] = ()
    """`round_robin`: where each eligibility pool's turn stopped (pool, last manager), so
    the rotation continues across plans; the plan returns the new positions."""
    rotation_counts: tuple[tuple[str, UUID, int], ...] = ()
    """`weighted_round_robin`: (pool, manager, customers received) in the current period, so
    the shares hold across plans; the plan returns the counts after it."""
    deadline: float | None = None
    """A `time.monotonic()` instant past which the plan stops with `OverBudget` (None: never).
    It decides only whether the plan goes on, never what it is."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RebalanceOptions:
    """How `rebalance` evens out workloads."""

    now: datetime
    target_utilization: float = 1.0
    max_spread: float | None = None
    min_days_since_move: int = 90
    exclude_manager_ids: frozenset[UUID] = frozenset()
    explain: Explain = "basic"
    utilization_penalty: float = DEFAULT_UTILIZATION_PENALTY
    deadline: float | None = None
    """A `time.monotonic()` instant past which the plan stops with `OverBudget` (None: never)."""
