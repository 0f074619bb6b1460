"""Handover resources in and out: the handover, its items, briefings, checklist and outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from app import vocabulary
from app.core.schemas import AwareInstant, Email, one_of
from app.reports.schemas import KpiRow

HandoverReason = Annotated[vocabulary.HandoverReason, one_of(vocabulary.HandoverReason)]
HandoverStrategy = Annotated[vocabulary.Strategy, one_of(vocabulary.HANDOVER_STRATEGIES)]
HandoverState = Annotated[vocabulary.HandoverState, one_of(vocabulary.HandoverState)]
ItemStatus = Annotated[vocabulary.HandoverItemStatus, one_of(vocabulary.HandoverItemStatus)]
ChecklistTask = Annotated[vocabulary.HandoverTask, one_of(vocabulary.HandoverTask)]
Note = Annotated[str, Field(min_length=1, max_length=2000)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
TierCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Money = Annotated[
    Decimal, Field(ge=0, max_digits=18, decimal_places=2, description="Decimal string.")
]

_M1 = "3f2b9a60-0c1e-4d7a-9b0e-5d9b7c1e2a44"
_M2 = "8d1c7e52-4f0a-4b6e-a1c3-2e9f5b7d0c11"
_C1 = "c0ffee00-1234-4a5b-8c9d-0e1f2a3b4c5d"


class HandoverScope(BaseModel):
    """Which of the manager's customers the handover covers; both empty = all of them."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"tiers": ["strategic"]}]}
    )

    tiers: list[TierCode] = Field(
        default_factory=list, max_length=50, description="Only customers of these tiers."
    )
    customer_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=100_000,
        description="Only these customers (each must be the manager's).",
    )


class HandoverCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "from_manager_id": _M1,
                    "reason": "departure",
                    "strategy": "balanced",
                    "interim_manager_id": _M2,
                    "effective_at": "2026-12-01T09:00:00Z",
                    "notify_customers": True,
                    "note": "Leaves on 30 November.",
                }
            ]
        },
    )

    from_manager_id: uuid.UUID = Field(description="The manager whose customers move.")
    reason: HandoverReason
    strategy: HandoverStrategy = Field(
        vocabulary.Strategy.BALANCED, description="How the engine places them."
    )
    successor_id: uuid.UUID | None = Field(
        None, description="Required by the `successor` strategy: everyone goes to this manager."
    )
    interim_manager_id: uuid.UUID | None = Field(
        None, description="Owns the customers from now until execution when interim applies."
    )
    interim_now: StrictBool = Field(
        False,
        description="Put the customers under the interim manager at once even though the "
        "manager has not departed (a departed manager's customers always go at once).",
    )
    effective_at: AwareInstant | None = Field(
        None, description="When an approved handover is executed by the worker; null = on demand."
    )
    until: AwareInstant | None = Field(
        None,
        description="`leave` only: temporary cover; the customers return to their owner then.",
    )
    notify_customers: StrictBool = Field(
        True,
        description="At execution, send each moved customer a `handover.customer_notification` "
        "and each new owner a `handover.owner_briefing` (outbound webhooks).",
    )
    scope: HandoverScope | None = Field(None, description="Null = all the manager's customers.")
    force_transfer_limit: StrictBool = Field(
        False, description="Allow customers already transferred too often in the window."
    )
    note: Note | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HandoverCreate:
        if self.strategy == "successor" and self.successor_id is None:
            raise ValueError("the successor strategy needs successor_id")
        if self.from_manager_id in (self.successor_id, self.interim_manager_id):
            raise ValueError("the leaving manager cannot be their own successor or interim")
        if self.interim_now and self.interim_manager_id is None:
            raise ValueError("interim_now needs interim_manager_id")
        if self.until is not None:
            if self.reason != "leave":
                raise ValueError("until is only for a leave handover (temporary cover)")
            if self.effective_at is not None and self.until <= self.effective_at:
                raise ValueError("until must be after effective_at")
            if self.until <= datetime.now(UTC):
                raise ValueError("until must be in the future")
        return self


class ActionIn(BaseModel):
    """Optional body of a state-changing action."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"note": "Approved by the sales director."}]},
    )

    note: Note | None = None
    force: StrictBool = Field(
        False,
        description="approve: accept customers over the transfer limit; execute: run now even "
        "if effective_at is in the future.",
    )


class ItemOverride(BaseModel):
    """Override the proposed owner of one customer before approval."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"manager_id": _M2, "reason": "Knows the customer's CFO."}]
        },
    )

    manager_id: uuid.UUID | None = Field(
        description="The owner to give this customer; null removes the override."
    )
    reason: Note | None = Field(None, description="Why; required with force.")
    force: StrictBool = Field(False, description="Override hard rules (recorded).")

    @model_validator(mode="after")
    def _reason_when_forced(self) -> ItemOverride:
        if self.force and self.reason is None:
            raise ValueError("a forced override needs a reason")
        return self


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText
    role: ShortText | None = None
    phone: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    email: Email | None = None


class OpenProject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText
    progress: int = Field(0, ge=0, le=100, description="Percent done.")
    status: ShortText | None = None
    next_step: Note | None = None


class Briefing(BaseModel):
    """What the next owner must know (seed 003 §1.1)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "key_contacts": [{"name": "Wang Fang", "role": "CFO", "phone": "+86 571 0000"}],
                    "open_projects": [
                        {"name": "ERP rollout", "progress": 60, "status": "on track"}
                    ],
                    "contract_status": "renewal due 2027-03",
                    "outstanding_amount": "12000.00",
                    "notes": "Prefers WeChat; quarterly review in January.",
                }
            ]
        },
    )

    key_contacts: list[Contact] = Field(default_factory=list, max_length=50)
    open_projects: list[OpenProject] = Field(default_factory=list, max_length=100)
    contract_status: Note | None = None
    outstanding_amount: Money | None = None
    notes: Annotated[str, Field(max_length=10_000)] | None = None


class RefuseIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "Wants a Mandarin speaker."}]}
    )

    reason: Note | None = None


class TaskUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"done": True, "note": "Sent to CRM."}]}
    )

    done: StrictBool = True
    note: Note | None = None


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    task: ChecklistTask
    done: bool
    done_by: str | None
    done_at: datetime | None
    note: str | None


class ChecklistOut(BaseModel):
    tasks: list[TaskOut]
    done: int
    total: int
    progress: float = Field(description="Share of tasks done, 0–1.")


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    action: str
    from_state: str | None
    to_state: str
    actor: str
    at: datetime
    detail: dict[str, Any] | None


class HandoverOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5b0c3d1e-8a7f-4c2b-9e6d-1f0a2b3c4d5e",
                    "from_manager_id": _M1,
                    "reason": "departure",
                    "strategy": "balanced",
                    "successor_id": None,
                    "interim_manager_id": None,
                    "interim_applied_at": None,
                    "state": "planned",
                    "allowed_actions": ["plan", "approve", "cancel"],
                    "effective_at": None,
                    "until": None,
                    "notify_customers": True,
                    "force_transfer_limit": False,
                    "scope": None,
                    "note": "Li Na leaves on 31 December.",
                    "counts": {"total": 42, "proposed": 40, "unplaced": 2, "briefed": 12},
                    "checklist": {
                        "tasks": [
                            {
                                "task": "customer_list_exported",
                                "done": True,
                                "done_by": "sales-ops",
                                "done_at": "2026-11-25T09:05:00Z",
                                "note": "Exported from the CRM.",
                            }
                        ],
                        "done": 1,
                        "total": 1,
                        "progress": 1.0,
                    },
                    "plan_metrics": {"peak_utilization": 0.91},
                    "audit": [
                        {
                            "action": "plan",
                            "from_state": "draft",
                            "to_state": "planned",
                            "actor": "sales-ops",
                            "at": "2026-11-25T09:01:00Z",
                            "detail": {"strategy": "balanced"},
                        }
                    ],
                    "created_by": "sales-ops",
                    "completed_at": None,
                    "cover_returned_at": None,
                    "created_at": "2026-11-25T09:00:00Z",
                    "updated_at": "2026-11-25T09:01:00Z",
                    "version": 2,
                }
            ]
        }
    )

    id: uuid.UUID
    from_manager_id: uuid.UUID
    reason: HandoverReason
    strategy: HandoverStrategy
    successor_id: uuid.UUID | None
    interim_manager_id: uuid.UUID | None
    interim_applied_at: datetime | None = Field(description="When customers went to the interim.")
    state: HandoverState
    allowed_actions: list[str]
    effective_at: datetime | None
    until: datetime | None
    notify_customers: bool
    force_transfer_limit: bool
    scope: HandoverScope | None
    note: str | None
    counts: dict[str, int] = Field(description="Items per status, plus total and briefed.")
    checklist: ChecklistOut
    plan_metrics: dict[str, Any] | None
    audit: list[AuditEntry] = Field(description="Every state change: who, when, from → to.")
    created_by: str
    completed_at: datetime | None
    cover_returned_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class OverrideOut(BaseModel):
    manager_id: uuid.UUID
    reason: str | None
    forced: bool
    by: str | None
    at: datetime | None


class ItemOut(BaseModel):
    customer_id: uuid.UUID
    customer_name: str
    tier: str
    original_manager_id: uuid.UUID | None = Field(description="The owner before the handover.")
    current_manager_id: uuid.UUID | None
    proposed_manager_id: uuid.UUID | None = Field(description="The engine's choice; null = pool.")
    override: OverrideOut | None
    final_manager_id: uuid.UUID | None = Field(description="Who got the customer at execution.")
    status: ItemStatus
    score: float | None
    reasons: list[str] = Field(description="Why unplaced, or the engine's reason codes.")
    explanation: dict[str, Any] | None
    briefing: Briefing | None
    moved_at: datetime | None
    notification_status: Literal["pending", "sent", "not_sent"] | None = Field(
        description="pending until a delivery of the customer's notification succeeds (sent); "
        "not_sent with `notification_error` when nobody subscribes or every delivery failed."
    )
    notification_error: str | None
    notified_at: datetime | None = Field(description="When the notification was delivered.")
    refused_at: datetime | None
    refused_manager_id: uuid.UUID | None
    outcome_note: str | None = Field(description="Why a rollback or cover return skipped it.")


class Unrestored(BaseModel):
    customer_id: uuid.UUID
    reason: str


class RestoreOut(BaseModel):
    """The result of a rollback or a cover return."""

    handover: HandoverOut
    restored: int
    not_restored: list[Unrestored]


class GroupOutcome(BaseModel):
    customers: int
    retained: int = Field(description="Not churned by the end of the window.")
    churned: int = Field(description="Churned inside the window.")
    retention_rate: float | None
    satisfaction_before: float | None = Field(
        description="Mean of the latest score at or before execution (the customer's field "
        "when it has no score at all)."
    )
    satisfaction_latest: float | None = Field(description="Mean of the latest score in the window.")
    satisfaction_change: float | None = Field(description="Mean change, customers with both.")


class StratumMatch(BaseModel):
    """How the moved customers of one tier and region were matched."""

    tier: str
    region: str | None
    moved: int
    matched_on: Literal["tier_region", "tier", "none"]
    control: int = Field(description="Control customers for this stratum.")
    control_retention_rate: float | None


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: Annotated[Decimal, Field(ge=0, le=10, max_digits=4, decimal_places=2)] | None = Field(
        None, description="0–10."
    )
    note: Annotated[str, Field(min_length=1, max_length=4000)] | None = None


class FeedbackOut(BaseModel):
    """One team member's word on how a handover went."""

    id: int
    handover_id: uuid.UUID
    score: Decimal | None
    note: str | None
    actor: str
    created_at: datetime


class NewOwnerKpis(BaseModel):
    """A new owner's KPIs over the observation window next to the same length before it."""

    manager_id: uuid.UUID
    name: str | None
    customers_received: int = Field(description="Customers this handover gave them.")
    window: KpiRow
    previous: KpiRow


class OutcomeOut(BaseModel):
    """How the moved customers fared over an observation window after execution, against a
    control group matched on tier and region (seed 000 §6)."""

    handover_id: uuid.UUID
    state: HandoverState
    period_start: datetime = Field(description="Execution (the pivot); creation if not executed.")
    period_end: datetime = Field(description="End of the window: `window_days` later, or now.")
    window_days: int
    moved: GroupOutcome
    control: GroupOutcome = Field(
        description="Customers active and owned at execution, not in this handover, not moved "
        "during the window, of the moved customers' tiers and regions (tier alone where the "
        "region has none)."
    )
    control_retention_rate_matched: float | None = Field(
        description="The control's retention weighted by the moved customers' strata, the "
        "rate to compare with `moved.retention_rate`."
    )
    matching: list[StratumMatch]
    refusals: int
    hours_to_complete: float | None
    new_owners: list[NewOwnerKpis] = Field(
        description="Empty until the window has some length (just executed, or not yet)."
    )
    feedback: list[FeedbackOut]
    feedback_score: float | None = Field(description="Mean of the feedback scores given.")
