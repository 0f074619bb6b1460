"""Plans, placement requests and workload reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app import vocabulary
from app.core.schemas import one_of

Strategy = Annotated[vocabulary.Strategy, one_of(vocabulary.Strategy)]
Explain = Literal["none", "basic", "full"]


class CustomerSelection(BaseModel):
    """Which customers to place: explicit ids, or a filter; nothing at all means the pool."""

    model_config = ConfigDict(extra="forbid")

    customer_ids: list[uuid.UUID] | None = Field(None, max_length=100_000)
    tier: str | None = Field(None, max_length=64)
    region: str | None = Field(None, max_length=200)
    manager_id: uuid.UUID | None = Field(None, description="Customers this manager owns now.")
    unassigned: StrictBool | None = Field(
        None, description="Only the pool (default when no filter)."
    )


class PlanRequest(CustomerSelection):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"unassigned": True, "strategy": "balanced", "explain": "basic"}]
        },
    )

    mode: Literal["place", "repair"] = Field(
        "place",
        description="`place`: the selected customers (the pool by default). `repair`: only "
        "customers whose owner breaks a hard rule (`GET /v1/violations`, narrowed by the "
        "filters); compliant customers never move; ledger reason `repair`.",
    )
    strategy: Strategy = vocabulary.Strategy.BALANCED
    successor_id: uuid.UUID | None = Field(None, description="Required by `successor`.")
    exclude_manager_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    force: StrictBool = Field(False, description="`successor` only: override capacity (recorded).")
    explain: Explain = "basic"
    decisions_limit: int = Field(
        1000, ge=0, le=100_000, description="How many decisions to return (metrics cover all)."
    )


class ApplyRequest(PlanRequest):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"plan_token": "pl_3q2…"}]}
    )

    plan_token: str | None = Field(
        None,
        max_length=128,
        description="From a dry run: applies exactly that plan's selection and options (no "
        "need to repeat them); 409 `stale_plan` naming what changed if any input it read "
        "changed since (customers, managers, workloads, tiers, rules, rotation).",
    )
    review: Literal["required", "skip"] = Field(
        "required",
        description="Without a `plan_token` the apply is refused unless `skip` says that "
        "nobody reviews the plan (recorded in the audit trail).",
    )
    note: str | None = Field(None, max_length=2000)


class ViolationRule(BaseModel):
    """A hard rule an owner breaks."""

    rule: str = Field(description="The rule's id: a built-in rule or one of the rule set's.")
    message: str


class ViolationBrief(BaseModel):
    """A customer whose owner a change made non-compliant."""

    customer_id: uuid.UUID
    manager_id: uuid.UUID
    rules: list[ViolationRule]


class ViolationsDetected(BaseModel):
    """What a change did to the compliance of current owners (see `GET /v1/violations`)."""

    violations_detected: list[ViolationBrief] = Field(
        default_factory=list,
        description="Customers this change left with an owner that breaks a hard rule (the "
        "first 100); each is recorded and listed by `GET /v1/violations` until repaired.",
    )
    violations_detected_count: int = Field(0, description="How many in all.")


class ViolationOut(BaseModel):
    """A recorded violation: who owns whom against which rules, since when."""

    id: int
    customer_id: uuid.UUID
    customer_name: str
    tier: str
    manager_id: uuid.UUID
    manager_name: str
    team: str | None
    rules: list[ViolationRule]
    cause: str = Field(description="The kind of change that caused it (e.g. `tier_updated`).")
    actor: str | None
    detected_at: datetime
    resolved_at: datetime | None = Field(description="Null while the violation holds.")
    resolution: str | None = Field(
        description="`moved` (the customer changed owner), `compliant` (the facts or rules "
        "changed back) or `superseded` (other rules are broken now; see the newer row)."
    )


class DecisionOut(BaseModel):
    customer_id: uuid.UUID
    from_manager_id: uuid.UUID | None
    manager_id: uuid.UUID | None = Field(description="Null: the customer goes to the pool.")
    score: float
    reasons: list[str]
    explanation: dict[str, Any] | None = None
    forced: list[str] = Field(default_factory=list)


class ManagerLoadOut(BaseModel):
    manager_id: uuid.UUID
    workload_before: int
    workload_after: int
    utilization_before: float | None
    utilization_after: float | None


class MetricsOut(BaseModel):
    peak_utilization: float | None
    utilization_spread: float | None
    utilization_stddev: float | None
    moved: int
    pooled: int
    lower_bound: float | None = None
    proven_optimal: bool | None = None
    fairness: float | None = Field(
        None,
        description="weighted_round_robin: Jain's index of customers received per rotation "
        "weight in the period over the rotation pools' managers (1.0: exactly by weight).",
    )


class OverTargetOut(BaseModel):
    """A manager a rebalance could not bring under the target, and why."""

    manager_id: uuid.UUID
    utilization_after: float
    reason: Literal["customers_held", "no_room_elsewhere"] = Field(
        description="`customers_held`: every customer left is pinned or changed owner within "
        "`min_days_since_move`; `no_room_elsewhere`: no manager allowed to take its movable "
        "customers had room under the target."
    )
    pinned: int = Field(description="Its pinned customers.")
    recently_moved: int = Field(description="Its customers that changed owner too recently.")
    movable: int = Field(description="Its customers the rebalance was free to move.")


class PlanOut(BaseModel):
    """An engine plan: a decision per customer, loads before/after and balance metrics."""

    strategy: str
    decisions: list[DecisionOut]
    managers: list[ManagerLoadOut]
    metrics: MetricsOut
    customers_total: int = Field(description="Customers placed by the plan (decisions may be cut).")
    plan_token: str = Field(description="Pass to apply to refuse a stale plan.")
    rules_version: int
    applied: bool = False
    moved: int = Field(0, description="Customers whose owner changed when applied.")
    over_target: list[OverTargetOut] = Field(
        default_factory=list,
        description="Rebalance only: managers still above `target_utilization` after the "
        "plan, highest first, with the reason (empty when the target is met).",
    )


class AssignRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"strategy": "balanced", "dry_run": True}]}
    )

    manager_id: uuid.UUID | None = Field(
        None, description="Place with this manager (checked against every hard rule)."
    )
    strategy: Strategy = vocabulary.Strategy.BALANCED
    dry_run: StrictBool = False
    explain: Explain = "basic"
    force: StrictBool = Field(
        False, description="With manager_id: override capacity only (recorded)."
    )


class AssignOut(BaseModel):
    decision: DecisionOut
    applied: bool
    rules_version: int


class RebalanceRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"dry_run": True, "target_utilization": 0.9}]},
    )

    dry_run: StrictBool = True
    target_utilization: float = Field(1.0, gt=0, le=10)
    max_spread: float | None = Field(None, ge=0, le=10)
    min_days_since_move: int = Field(90, ge=0, le=3650)
    team: str | None = Field(None, max_length=200, description="Only this team's managers.")
    region: str | None = Field(None, max_length=200, description="Only this region's managers.")
    explain: Explain = "basic"
    decisions_limit: int = Field(1000, ge=0, le=100_000)


class TierCount(BaseModel):
    tier: str
    customers: int
    workload: int


class ManagerWorkload(BaseModel):
    manager_id: uuid.UUID
    name: str
    team: str | None
    region: str | None
    status: str
    level: int
    capacity: int
    workload: int
    utilization: float | None
    customer_count: int
    by_tier: list[TierCount]


class GroupWorkload(BaseModel):
    key: str | None
    managers: int
    capacity: int
    workload: int
    utilization: float | None
    customer_count: int


class WorkloadReport(BaseModel):
    """Workload per manager and per team and region, with balance metrics."""

    managers: list[ManagerWorkload]
    teams: list[GroupWorkload]
    regions: list[GroupWorkload]
    pool: int = Field(description="Active customers without an owner.")
    metrics: MetricsOut
