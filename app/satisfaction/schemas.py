"""Satisfaction scores in and out."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Score = Annotated[
    Decimal,
    Field(ge=0, le=10, max_digits=4, decimal_places=2, description="0–10.", examples=["8.5"]),
]


class SatisfactionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"score": "8.5", "recorded_at": "2026-11-20T10:00:00Z", "source": "nps"}]
        },
    )

    score: Score
    recorded_at: AwareDatetime | None = Field(None, description="When measured; default now.")
    source: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        "api", description="Where it came from: survey, nps, hubspot…"
    )
    note: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class SatisfactionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: uuid.UUID
    score: Decimal
    recorded_at: datetime
    source: str
    note: str | None
    created_at: datetime
