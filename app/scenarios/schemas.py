"""Scenario resources in and out: a draft re-division, its preview, a comparison."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app import vocabulary
from app.assignments.schemas import DecisionOut
from app.core.schemas import PatchModel, one_of
from app.managers.schemas import Capacity, Level, ManagerCreate, ManagerStatus, ShortText, Tag
from app.tiers.schemas import TierCode, Weight

ScenarioState = Annotated[vocabulary.ScenarioState, one_of(vocabulary.ScenarioState)]


class ManagerChange(PatchModel):
    """New values for one existing manager; fields left out keep their live value."""

    model_config = ConfigDict(extra="forbid")
    NOT_NULL = ("level", "capacity", "status", "accepting_new", "languages", "industries")

    manager_id: uuid.UUID
    team: ShortText | None = None
    region: ShortText | None = None
    level: Level | None = None
    capacity: Capacity | None = None
    languages: list[Tag] | None = Field(None, max_length=50)
    industries: list[Tag] | None = Field(None, max_length=100)
    status: ManagerStatus | None = None
    accepting_new: bool | None = None


class NewManager(ManagerCreate):
    """A manager the scenario adds; its id is fixed when the draft is saved."""

    id: uuid.UUID | None = Field(None, description="Given by the server when left out.")


class TierChange(PatchModel):
    """New weight or minimum manager level for one tier."""

    model_config = ConfigDict(extra="forbid")
    NOT_NULL = ("weight", "min_manager_level")

    code: TierCode
    weight: Weight | None = None
    min_manager_level: Level | None = None


class CustomerFilter(BaseModel):
    """Customers matching every given field (values as they are live, before the scenario)."""

    model_config = ConfigDict(extra="forbid")

    region: ShortText | None = None
    tier: TierCode | None = None
    manager_id: uuid.UUID | None = Field(None, description="Customers this manager owns.")
    team: ShortText | None = Field(None, description="Customers owned by this team's managers.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("a filter needs at least one field")
        return self


class CustomerValues(PatchModel):
    """New values for the selected customers."""

    model_config = ConfigDict(extra="forbid")
    NOT_NULL = ("tier", "pinned")

    tier: TierCode | None = None
    region: ShortText | None = None
    pinned: bool | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("set at least one of tier, region, pinned")
        return self


class CustomerChange(BaseModel):
    """Customers by list or by filter, and what changes for them."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"filter": {"region": "east-2"}, "set": {"region": "east"}}]
        },
    )

    customer_ids: list[uuid.UUID] | None = Field(None, min_length=1, max_length=10_000)
    filter: CustomerFilter | None = None
    set: CustomerValues

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        if (self.customer_ids is None) == (self.filter is None):
            raise ValueError("give exactly one of customer_ids and filter")
        return self


class ScenarioChanges(BaseModel):
    """Everything a re-division changes. Nothing here is live until the scenario is
    activated; rules left out keep the rule set in force."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "managers": [
                        {"manager_id": "3f2b9a60-0c1e-4d7a-9b0e-5d9b7c1e2a44", "region": "east-2"}
                    ],
                    "customers": [
                        {"filter": {"region": "east", "tier": "key"}, "set": {"region": "east-2"}}
                    ],
                }
            ]
        },
    )

    rules: dict[str, Any] | None = Field(
        None, description="A whole rule set (as `PUT /v1/rules` takes) to put in force."
    )
    managers: list[ManagerChange] = Field(default_factory=list, max_length=20_000)
    new_managers: list[NewManager] = Field(default_factory=list, max_length=5_000)
    tiers: list[TierChange] = Field(default_factory=list, max_length=100)
    customers: list[CustomerChange] = Field(default_factory=list, max_length=1_000)


class ScenarioCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5_000)
    changes: ScenarioChanges = Field(default_factory=ScenarioChanges)


class ScenarioUpdate(PatchModel):
    """A draft's new name, description or changes (the changes are replaced as a whole and
    the stored preview is dropped)."""

    model_config = ConfigDict(extra="forbid")
    NOT_NULL = ("name", "changes")

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5_000)
    changes: ScenarioChanges | None = None


class PreviewOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fix_only: bool = Field(
        True,
        description="Move only the customers whose owner breaks a hard rule under the "
        "scenario (like a repair plan). False also brings utilization under `rebalance_to`.",
    )
    rebalance_to: float | None = Field(
        None,
        gt=0,
        le=2,
        description="With `fix_only: false`: the target utilization (default 1.0).",
    )
    max_moves: int | None = Field(
        None,
        ge=0,
        le=10_000_000,
        description="At most this many moves; the most important customers are fixed first "
        "and the rest are reported as violations left (reason `max_moves`).",
    )
    min_days_since_move: int = Field(
        90, ge=0, le=3650, description="Stability guard of the rebalancing part."
    )
    decisions_limit: int = Field(50, ge=0, le=1000, description="Decisions returned.")
    explain: Literal["none", "basic", "full"] = "basic"


class Balance(BaseModel):
    peak_utilization: float | None
    utilization_spread: float | None


class ManagerLoadChange(BaseModel):
    manager_id: uuid.UUID
    team_before: str | None
    team_after: str | None
    new: bool = Field(description="Added by the scenario.")
    capacity_before: int
    capacity_after: int
    workload_before: int
    workload_after: int
    utilization_before: float | None
    utilization_after: float | None


class TeamLoad(BaseModel):
    team: str | None
    managers_before: int
    managers_after: int
    capacity_before: int
    capacity_after: int
    workload_before: int
    workload_after: int
    utilization_before: float | None
    utilization_after: float | None


class RuleBroken(BaseModel):
    rule: str
    message: str


class ViolationLeft(BaseModel):
    customer_id: uuid.UUID
    manager_id: uuid.UUID
    rules: list[RuleBroken]
    reason: str = Field(
        description="Why it stays: `pinned`, `max_moves`, `no_eligible_manager`, `no_capacity`."
    )


class PreviewOut(BaseModel):
    """The fewest moves that make every customer compliant under the scenario (and, unless
    `fix_only`, bring utilization under the target), computed against the live book."""

    scenario_id: uuid.UUID
    computed_at: datetime
    options: PreviewOptions
    customers_total: int = Field(description="Owned active customers in the book.")
    customers_changed: int = Field(
        description="Owned customers whose tier, region or pin changes (pool customers a "
        "change selects are updated at activation too)."
    )
    managers_changed: int
    managers_added: int
    violations_found: int = Field(description="Owners breaking a hard rule under the scenario.")
    moves: int
    moves_by_reason: dict[str, int] = Field(
        description="Per rule a move fixes (its first broken rule), `rebalance_over_target`, "
        "`to_pool` (the owner departs and nobody can take the customer)."
    )
    continuity: float = Field(description="Share of customers keeping their owner.")
    violations_left: int
    violations_left_by_reason: dict[str, int]
    violations_left_sample: list[ViolationLeft] = Field(description="The first 100.")
    before: Balance
    after: Balance
    managers: list[ManagerLoadChange] = Field(
        description="Managers whose team, capacity or workload changes (the first 1 000)."
    )
    teams: list[TeamLoad]
    decisions: list[DecisionOut] = Field(
        description="The moves' decisions with their explanation (`decisions_limit`)."
    )
    digests: dict[str, str] = Field(description="Digests of the inputs the preview read.")


class PreviewSummary(BaseModel):
    computed_at: datetime
    moves: int
    continuity: float
    violations_left: int
    peak_utilization: float | None
    utilization_spread: float | None


class ScenarioOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    state: ScenarioState
    changes: ScenarioChanges
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int
    preview: PreviewSummary | None = Field(description="The latest preview, if any.")
    activated_at: datetime | None
    activated_by: str | None
    activation: dict[str, Any] | None = Field(
        description="What the activation applied: moves, rule set version, entity counts, "
        "violations recorded."
    )


class TeamChange(BaseModel):
    team: str | None
    workload_before: int
    workload_after: int
    utilization_before: float | None
    utilization_after: float | None


class ComparedScenario(BaseModel):
    id: uuid.UUID
    name: str
    state: ScenarioState
    previewed_at: datetime | None = Field(description="Null: not previewed yet.")
    moves: int | None
    moves_by_reason: dict[str, int] | None
    peak_utilization: float | None
    utilization_spread: float | None
    continuity: float | None
    violations_left: int | None
    teams: list[TeamChange]


class Comparison(BaseModel):
    before: Balance | None = Field(description="The live book's balance (from the previews).")
    scenarios: list[ComparedScenario]
