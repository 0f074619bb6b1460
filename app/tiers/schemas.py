"""Tier resources in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.assignments.schemas import ViolationsDetected
from app.core.schemas import PatchModel

TierCode = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", examples=["strategic"], description="Stable key."),
]
Rank = Annotated[int, Field(ge=1, le=1000, description="1 = most important.")]
Weight = Annotated[int, Field(gt=0, le=1_000_000, description="Workload units per customer.")]
Level = Annotated[int, Field(ge=1, le=5, description="Manager level, 1 junior … 5 principal.")]


class TierCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "strategic",
                    "name": "Strategic",
                    "rank": 1,
                    "weight": 8,
                    "min_manager_level": 4,
                    "description": "Top accounts; senior managers only.",
                }
            ]
        },
    )

    code: TierCode
    name: str = Field(min_length=1, max_length=200)
    rank: Rank
    weight: Weight
    min_manager_level: Level
    description: str | None = Field(None, max_length=2000)


class TierUpdate(PatchModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"weight": 6, "min_manager_level": 3}]}
    )

    NOT_NULL = ("name", "rank", "weight", "min_manager_level")

    name: str | None = Field(None, min_length=1, max_length=200)
    rank: Rank | None = None
    weight: Weight | None = None
    min_manager_level: Level | None = None
    description: str | None = Field(None, max_length=2000)


class TierOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    rank: int
    weight: int
    min_manager_level: int
    description: str | None
    customer_count: int = Field(description="Active customers in this tier.")
    version: int
    created_at: datetime
    updated_at: datetime


class TierChangeOut(TierOut, ViolationsDetected):
    """The tier after a change, with the owners a higher minimum level left below it."""
