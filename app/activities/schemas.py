"""Follow-up activities in and out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app import vocabulary
from app.core.schemas import AwareInstant, one_of

ActivityKind = Annotated[vocabulary.ActivityKind, one_of(vocabulary.ActivityKind)]


class ActivityCreate(BaseModel):
    """A follow-up with the customer; a known `external_id` returns the recorded one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "call", "at": "2026-12-01T09:30:00Z", "external_id": "crm-81"}]
        },
    )

    kind: ActivityKind
    at: AwareInstant
    by: uuid.UUID | None = Field(None, description="The manager who followed up.")
    external_id: str | None = Field(
        None, min_length=1, max_length=200, description="The source system's id (idempotent)."
    )
    note: str | None = Field(None, max_length=2000)


class ActivityOut(BaseModel):
    """A recorded follow-up."""

    model_config = ConfigDict(from_attributes=True)

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        """A stored row names the column `by_manager_id`; the resource calls it `by` (renamed
        here rather than by an alias, which would leak into the published schema)."""
        if isinstance(data, dict) or not hasattr(data, "by_manager_id"):
            return data
        values = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        return {**values, "by": data.by_manager_id}

    id: uuid.UUID
    customer_id: uuid.UUID
    kind: ActivityKind
    at: datetime
    by: uuid.UUID | None
    external_id: str | None
    note: str | None
    created_by: str
    created_at: datetime


class ActivityList(BaseModel):
    """The latest follow-ups, newest first."""

    items: list[ActivityOut]
