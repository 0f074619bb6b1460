"""Follow-up activities in and out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import AwareInstant

ActivityKind = Literal["call", "email", "meeting", "visit", "message", "note", "other"]


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

    id: uuid.UUID
    customer_id: uuid.UUID
    kind: ActivityKind
    at: datetime
    by: uuid.UUID | None = Field(validation_alias="by_manager_id")
    external_id: str | None
    note: str | None
    created_by: str
    created_at: datetime


class ActivityList(BaseModel):
    """The latest follow-ups, newest first."""

    items: list[ActivityOut]
