"""The public pool in and out: reclaim policies, the reclaim preview, claims."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ReclaimPolicyIn(BaseModel):
    """A tier's pool rules (days are whole days of 24 hours)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"inactive_days": 30, "warning_days": 3, "cooldown_days": 14, "daily_claim_cap": 5}
            ]
        },
    )

    inactive_days: int = Field(
        ge=1, le=3650, description="Days without follow-up before the customer is reclaimed."
    )
    warning_days: int = Field(
        0, ge=0, le=3650, description="The owner is warned this many days before (0: no warning)."
    )
    cooldown_days: int = Field(
        0, ge=0, le=3650, description="Days the former owner may not claim a reclaimed customer."
    )
    daily_claim_cap: int | None = Field(
        None, ge=0, le=100_000, description="Claims per manager in 24 hours; null: no cap."
    )
    first_touch_hours: int | None = Field(
        None,
        ge=1,
        le=87_600,
        description="First-touch SLA: a customer given an owner with no follow-up within this "
        "many hours is escalated (`customer.first_touch_missed`); null: no SLA.",
    )
    first_touch_action: Literal["escalate", "replace"] = Field(
        "escalate",
        description="Past the first-touch SLA: `escalate` (the event only) or `replace` (the "
        "event, and the customer re-placed by the engine with its owner excluded, ledger "
        "reason `first_touch_missed`; it stays when nobody else may take it).",
    )

    @model_validator(mode="after")
    def _warning_within_period(self) -> Self:
        if self.warning_days >= self.inactive_days:
            raise ValueError("warning_days must be less than inactive_days")
        return self


class ReclaimPolicyOut(ReclaimPolicyIn):
    """A tier's pool rules."""

    model_config = ConfigDict(
        from_attributes=True,
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "tier": "standard",
                    "inactive_days": 30,
                    "warning_days": 3,
                    "cooldown_days": 14,
                    "daily_claim_cap": 5,
                    "first_touch_hours": None,
                    "first_touch_action": "escalate",
                    "version": 1,
                    "updated_at": "2026-12-01T09:00:00Z",
                }
            ]
        },
    )

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        """A stored row names the column `tier_code`; the resource calls it `tier` (renamed
        here rather than by an alias, which would leak into the published schema)."""
        if isinstance(data, dict) or not hasattr(data, "tier_code"):
            return data
        values = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        return {**values, "tier": data.tier_code}

    tier: str
    version: int
    updated_at: datetime


class ReclaimPolicyList(BaseModel):
    """Every tier's pool rules."""

    items: list[ReclaimPolicyOut]


class ReclaimCandidate(BaseModel):
    """A customer the next sweep would return to the pool."""

    customer_id: uuid.UUID
    manager_id: uuid.UUID
    tier: str
    quiet_since: datetime = Field(description="The last follow-up, or when the owner got it.")


class ReclaimPreview(BaseModel):
    """What a sweep at `at` would reclaim (dry run: nothing changes)."""

    at: datetime
    customers: list[ReclaimCandidate]
    truncated: bool


class ClaimIn(BaseModel):
    """The manager claiming the customer from the pool."""

    model_config = ConfigDict(extra="forbid")

    manager_id: uuid.UUID


class BatchClaimIn(BaseModel):
    """Customers one manager claims from the pool, each decided on its own."""

    model_config = ConfigDict(extra="forbid")

    manager_id: uuid.UUID
    customer_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


class ClaimResult(BaseModel):
    """One customer of a batch claim: claimed, or the code that refused it."""

    customer_id: uuid.UUID
    claimed: bool
    code: str | None = Field(
        None,
        description="When refused: `not_found`, `not_in_pool`, `claim_cooldown`, "
        "`claim_cap_reached`, `rule_violation`…",
    )
    detail: str | None = None


class BatchClaimOut(BaseModel):
    """Per customer, in the order given."""

    results: list[ClaimResult]


class PoolCustomer(BaseModel):
    """A customer waiting in the pool, since when and why."""

    customer_id: uuid.UUID
    tier: str
    waiting_since: datetime = Field(description="When the last owner's period ended, or creation.")
    reason: Literal["never_placed", "reclaimed_inactive", "unassigned"] = Field(
        description="`never_placed`: never had an owner; `reclaimed_inactive`: returned by the "
        "reclaim sweep; `unassigned`: otherwise taken off its owner (manual, handover, repair…)."
    )
    placeable: bool = Field(
        description="Whether a placement now (the engine, as `POST /v1/customers/{id}/assign` "
        "would run it) gives the customer a manager."
    )
    engine_reasons: list[str] = Field(
        description="The engine's reason codes for the customer now: why it stays in the pool "
        "(`no_eligible_manager`: no manager may own its tier or region; `no_capacity`: the "
        "eligible managers are full; `intake_cap`: they reached their intake caps; "
        "`outside_hours`: none is within working hours…; absent managers are never eligible), "
        "or, when `placeable`, the reasons of the placement it would get. The customers of a "
        "page are placed together in order, so an earlier one can take the last room."
    )
