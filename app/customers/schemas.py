"""Customer resources in and out, and their ownership history."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from pydantic.json_schema import JsonDict

from app import vocabulary
from app.assignments.schemas import ViolationsDetected
from app.core.schemas import PatchModel, one_of

CustomerStatus = Annotated[vocabulary.CustomerStatus, one_of(vocabulary.CustomerStatus)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Money = Annotated[
    Decimal,
    Field(
        ge=0, max_digits=18, decimal_places=2, description="Decimal string.", examples=["250000.00"]
    ),
]
Satisfaction = Annotated[
    Decimal, Field(ge=0, le=10, max_digits=4, decimal_places=2, description="0–10.")
]
TierCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", examples=["key"])]

_EXAMPLE: JsonDict = {
    "external_ref": "hs-company-90210",
    "name": "Hangzhou Precision Parts Co.",
    "tier": "key",
    "region": "east",
    "language": "zh",
    "industry": "manufacturing",
    "annual_value": "480000.00",
    "satisfaction": "8.5",
}
CustomerSort = Literal[
    "name", "-name", "tier", "-tier", "annual_value", "-annual_value", "updated_at", "-updated_at"
]
"""The orders of the customer list (``-``: descending); ``tier`` is the tier's rank."""


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    external_ref: ShortText | None = None
    name: ShortText
    tier: TierCode
    status: CustomerStatus = vocabulary.CustomerStatus.ACTIVE
    region: ShortText | None = None
    language: ShortText | None = None
    industry: ShortText | None = None
    annual_value: Money | None = None
    satisfaction: Satisfaction | None = None
    manager_id: uuid.UUID | None = Field(
        None, description="Owner; setting it is a manual assignment. Null = the pool."
    )
    pinned: StrictBool = Field(False, description="Never moved automatically.")


class CustomerUpdate(PatchModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"manager_id": "3f2b9a60-0c1e-4d7a-9b0e-5d9b7c1e2a44"}]},
    )

    NOT_NULL = ("name", "tier", "status", "pinned")

    external_ref: ShortText | None = None
    name: ShortText | None = None
    tier: TierCode | None = None
    status: CustomerStatus | None = None
    region: ShortText | None = None
    language: ShortText | None = None
    industry: ShortText | None = None
    annual_value: Money | None = None
    satisfaction: Satisfaction | None = None
    manager_id: uuid.UUID | None = Field(
        None, description="New owner (manual assignment); null sends the customer to the pool."
    )
    pinned: StrictBool | None = None


_OUT_EXAMPLE: JsonDict = {
    "id": "9b6f1c2e-7a43-4d0e-8f51-2c3d4e5f6a7b",
    **_EXAMPLE,
    "status": "active",
    "manager_id": "3f2b9a60-0c1e-4d7a-9b0e-5d9b7c1e2a44",
    "pinned": False,
    "version": 3,
    "created_at": "2026-03-02T09:15:00Z",
    "updated_at": "2026-11-20T14:02:11Z",
}


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_OUT_EXAMPLE]})

    id: uuid.UUID
    external_ref: str | None
    name: str
    tier: str
    status: CustomerStatus
    region: str | None
    language: str | None
    industry: str | None
    annual_value: Decimal | None
    satisfaction: Decimal | None
    manager_id: uuid.UUID | None
    pinned: bool
    last_activity_at: datetime | None = Field(
        None, description="The latest follow-up activity (`/v1/customers/{id}/activities`)."
    )
    version: int
    created_at: datetime
    updated_at: datetime


class CustomerChangeOut(CustomerOut, ViolationsDetected):
    """The customer after a change, with any owner the change made non-compliant."""


class LedgerRowOut(BaseModel):
    """One period of ownership."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Ledger sequence number; higher is newer.")
    customer_id: uuid.UUID
    manager_id: uuid.UUID
    started_at: datetime
    ended_at: datetime | None = Field(description="Null while it is the current owner.")
    reason: str
    actor: str
    handover_id: uuid.UUID | None
    note: str | None


class OwnerAtOut(BaseModel):
    """Who owned the customer at an instant; ``manager_id`` null means the pool."""

    customer_id: uuid.UUID
    at: datetime
    manager_id: uuid.UUID | None
    assignment: LedgerRowOut | None
