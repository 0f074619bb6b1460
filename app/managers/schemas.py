"""Manager resources in and out."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict

from app import vocabulary
from app.assignments.schemas import ViolationsDetected
from app.core.schemas import Email, PatchModel, one_of

ManagerStatus = Annotated[vocabulary.ManagerStatus, one_of(vocabulary.ManagerStatus)]
ManagerSort = Literal["name", "-name", "utilization", "-utilization"]
"""The orders of the manager list (``-``: descending)."""
Level = Annotated[int, Field(ge=1, le=5, description="1 junior … 5 principal.")]
Capacity = Annotated[int, Field(ge=0, le=1_000_000, description="Workload units.")]
Tag = Annotated[str, Field(min_length=1, max_length=64)]
Ref = Annotated[str, Field(min_length=1, max_length=200, description="Id in the source CRM.")]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockTime = Annotated[
    str,
    Field(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", description="HH:MM, local time."),
]


def _known_zone(value: str) -> str:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (ValueError, OSError, LookupError) as exc:
        raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. Asia/Shanghai)") from exc
    return value


TimeZone = Annotated[
    str,
    Field(min_length=1, max_length=64, description="IANA time zone of the working hours."),
    AfterValidator(_known_zone),
]
RotationWeight = Annotated[
    int, Field(ge=1, le=1000, description="Share in weighted round robin (2: twice as many).")
]


class WorkingWindow(BaseModel):
    """Working time on some weekdays, ``start`` to ``end`` in the manager's time zone."""

    model_config = ConfigDict(extra="forbid")

    days: list[Weekday] = Field(min_length=1, max_length=7)
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ordered(self) -> WorkingWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start (use 24:00 for the end of the day)")
        return self


WorkingHours = Annotated[
    list[WorkingWindow],
    Field(
        max_length=50,
        description="When the manager works (null: always). Used by single-customer "
        "placements when the rule set's placement.available_now is on.",
    ),
]

_EXAMPLE: JsonDict = {
    "external_ref": "hs-owner-4411",
    "name": "Li Na",
    "email": "li.na@example.com",
    "level": 4,
    "capacity": 120,
    "region": "east",
    "languages": ["zh", "en"],
    "industries": ["manufacturing", "retail"],
    "team": "east-enterprise",
}


class ManagerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    external_ref: Ref | None = None
    name: ShortText
    email: Email
    level: Level
    capacity: Capacity
    status: ManagerStatus = vocabulary.ManagerStatus.ACTIVE
    accepting_new: StrictBool = True
    region: ShortText | None = None
    languages: list[Tag] = Field(default_factory=list, max_length=50)
    industries: list[Tag] = Field(default_factory=list, max_length=100)
    team: ShortText | None = None
    max_new_per_day: int | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="Intake cap: at most this many new customers (placements, manual moves, "
        "imports, webhooks; not handovers) in any 24 hours; null for no cap.",
    )
    max_new_per_week: int | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="Intake cap: at most this many new customers (placements, manual moves, "
        "imports, webhooks; not handovers) in any 7 days; null for no cap.",
    )
    rotation_weight: RotationWeight = 1
    time_zone: TimeZone | None = None
    working_hours: WorkingHours | None = None


class ManagerUpdate(PatchModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"capacity": 140, "accepting_new": False}]},
    )

    NOT_NULL = (
        "name",
        "email",
        "level",
        "capacity",
        "status",
        "accepting_new",
        "languages",
        "industries",
        "rotation_weight",
    )

    external_ref: Ref | None = None
    name: ShortText | None = None
    email: Email | None = None
    level: Level | None = None
    capacity: Capacity | None = None
    status: ManagerStatus | None = None
    accepting_new: StrictBool | None = None
    region: ShortText | None = None
    languages: list[Tag] | None = Field(None, max_length=50)
    industries: list[Tag] | None = Field(None, max_length=100)
    team: ShortText | None = None
    max_new_per_day: int | None = Field(None, ge=0, le=1_000_000)
    max_new_per_week: int | None = Field(None, ge=0, le=1_000_000)
    rotation_weight: RotationWeight | None = None
    time_zone: TimeZone | None = None
    working_hours: WorkingHours | None = None


class ManagerOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2b9a60-0c1e-4d7a-9b0e-5d9b7c1e2a44",
                    **_EXAMPLE,
                    "status": "active",
                    "accepting_new": True,
                    "workload": 96,
                    "utilization": 0.8,
                    "customer_count": 31,
                    "version": 2,
                    "created_at": "2026-01-12T08:00:00Z",
                    "updated_at": "2026-11-20T14:02:11Z",
                }
            ]
        },
    )

    id: uuid.UUID
    external_ref: str | None
    name: str
    email: str
    level: int
    capacity: int
    status: ManagerStatus
    accepting_new: bool
    region: str | None
    languages: list[str]
    industries: list[str]
    team: str | None
    max_new_per_day: int | None = Field(description="Intake cap per 24 hours; null: none.")
    max_new_per_week: int | None = Field(description="Intake cap per 7 days; null: none.")
    rotation_weight: int = Field(1, description="Share in weighted round robin.")
    time_zone: str | None = Field(None, description="IANA time zone (null: UTC).")
    working_hours: list[WorkingWindow] | None = Field(None, description="null: always.")

    @field_validator("working_hours", mode="before")
    @classmethod
    def _decoded(cls, value: object) -> object:
        # the committed-read path (raw asyncpg) returns jsonb as its text
        return json.loads(value) if isinstance(value, str) else value

    workload: int = Field(description="Sum of tier weights of the manager's active customers.")
    utilization: float | None = Field(description="workload / capacity; null when capacity is 0.")
    customer_count: int = Field(description="Active customers owned.")
    version: int
    created_at: datetime
    updated_at: datetime


class ManagerChangeOut(ManagerOut, ViolationsDetected):
    """The manager after a change: owners it made non-compliant, and the handover it started."""

    handover_id: uuid.UUID | None = Field(
        None,
        description="With `handover=auto`: the departure handover drafted and planned for the "
        "manager's customers (`/v1/handovers/{id}`).",
    )
