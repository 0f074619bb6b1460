"""Absences in and out: a period a manager takes no new customers, and who covers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app import vocabulary
from app.core.schemas import AwareInstant, PatchModel, one_of

AbsenceKind = Annotated[vocabulary.AbsenceKind, one_of(vocabulary.AbsenceKind)]
AbsenceState = Literal["scheduled", "current", "ended", "cancelled"]

_COVER = Field(
    default="none",
    max_length=60,
    description="`none`; `interim:<manager id>`: the manager named to cover (recorded and "
    "shown; it moves no customer); `auto`: a leave handover planned and approved now, executed "
    "at the start, its customers returned at the end (it follows the absence's changes).",
    examples=["none", "auto", "interim:0b7c6f1e-8d1a-4c3b-9f59-3f1e2a4b5c6d"],
)


def parse_cover(value: str) -> tuple[str, uuid.UUID | None]:
    """``none`` → ("none", None); ``interim:<uuid>`` → ("interim", the id); else ValueError."""
    if value in ("none", "auto"):
        return value, None
    kind, _, rest = value.partition(":")
    if kind == "interim" and rest:
        try:
            return "interim", uuid.UUID(rest)
        except ValueError:
            pass
    raise ValueError("cover is `none`, `auto` or `interim:<manager id>`")


class _Cover(BaseModel):
    @field_validator("cover", check_fields=False)
    @classmethod
    def _cover_is_known(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cover(value)
        return value


class AbsenceCreate(_Cover):
    """A new absence; `ends_at` is after `starts_at` (both ISO 8601 with an offset)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "starts_at": "2026-12-21T00:00:00Z",
                    "ends_at": "2027-01-04T00:00:00Z",
                    "kind": "leave",
                    "cover": "none",
                }
            ]
        },
    )

    starts_at: AwareInstant
    ends_at: AwareInstant
    kind: AbsenceKind
    cover: str = _COVER
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class AbsenceUpdate(PatchModel):
    """End early or extend (`ends_at`), move a scheduled start, change the note; an `auto`
    cover follows."""

    NOT_NULL = ("starts_at", "ends_at")
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"ends_at": "2026-12-28T00:00:00Z"}]},
    )

    starts_at: AwareInstant | None = None
    ends_at: AwareInstant | None = None
    note: str | None = Field(default=None, max_length=1000)


class AbsenceOut(BaseModel):
    """An absence and its state at the time of the request."""

    id: uuid.UUID
    manager_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    kind: AbsenceKind
    cover: str
    interim_manager_id: uuid.UUID | None
    cover_handover_id: uuid.UUID | None = Field(
        description="Cover `auto`: the leave handover (`/v1/handovers/{id}`)."
    )
    note: str | None
    state: AbsenceState
    created_by: str
    created_at: datetime
    cancelled_at: datetime | None


class AbsenceList(BaseModel):
    """A manager's absences by start."""

    items: list[AbsenceOut]
