"""Subscriptions and the delivery log, in and out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from app import vocabulary
from app.core.schemas import one_of
from app.events.names import OutboundType
from app.webhooks.targets import well_formed_url

EventTypeFilter = OutboundType | Literal["*"]
Url = Annotated[
    str,
    AfterValidator(well_formed_url),
    Field(
        min_length=8,
        max_length=2000,
        pattern=r"^https?://[^\s]+$",
        examples=["https://crm.example.com/hooks/baton"],
    ),
]
Description = Annotated[str, Field(min_length=1, max_length=500)]
DeliveryStatus = Annotated[vocabulary.DeliveryStatus, one_of(vocabulary.DeliveryStatus)]

_EXAMPLE: dict[str, Any] = {
    "url": "https://crm.example.com/hooks/baton",
    "event_types": ["customer.assigned", "customer.unassigned"],
    "description": "HubSpot sync",
}


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    url: Url
    event_types: list[EventTypeFilter] = Field(
        min_length=1, max_length=20, description="Event types to receive; `*` means all."
    )
    description: Description | None = None
    enabled: StrictBool = True
    batch_size: int = Field(
        1000,
        ge=1,
        le=10_000,
        description="Changes per `ownership.changed.batch` delivery (that type is never "
        "implied by `*`: name it).",
    )


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": True}]})

    url: Url | None = None
    event_types: list[EventTypeFilter] | None = Field(None, min_length=1, max_length=20)
    description: Description | None = None
    enabled: StrictBool | None = Field(None, description="Re-enabling clears `disabled_reason`.")
    batch_size: int | None = Field(None, ge=1, le=10_000)


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"grace_hours": 24}]})

    grace_hours: int | None = Field(
        None, ge=0, le=720, description="How long the old secret still signs (default 24 h)."
    )


_OUT_EXAMPLE: dict[str, Any] = {
    **_EXAMPLE,
    "id": "0b8f3c2e-8f5a-4c1d-9c6e-2f1a7d3e4b5c",
    "enabled": True,
    "batch_size": 1000,
    "disabled_reason": None,
    "previous_secret_expires_at": None,
    "created_at": "2026-11-25T09:00:00Z",
    "updated_at": "2026-11-25T09:00:00Z",
}


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [_OUT_EXAMPLE]},
    )

    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    batch_size: int = Field(description="Changes per `ownership.changed.batch` delivery.")
    disabled_reason: str | None = Field(description="Why Baton disabled it (e.g. 410 Gone).")
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the secret before the last rotation still signs."
    )
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(SubscriptionOut):
    """Returned once, at creation or rotation: the only time the secret is shown."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_OUT_EXAMPLE, "secret": "whsec_MfKQ9r8GKYqrTwjU"}]}
    )

    secret: str = Field(description="`whsec_…`; verify deliveries with it. Shown only now.")


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: uuid.UUID
    event_type: str
    subscription_id: uuid.UUID
    customer_id: uuid.UUID | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending).")
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: int | None
    delivered_at: datetime | None
    created_at: datetime


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryDetail(DeliveryOut):
    payload: dict[str, Any] = Field(description="The body sent: `{type, timestamp, data}`.")
    attempt_log: list[AttemptOut]
