"""Webhook sources and inbound events, in and out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app import vocabulary
from app.core.schemas import one_of

Adapter = Annotated[vocabulary.WebhookAdapter, one_of(vocabulary.WebhookAdapter)]
SourceName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", examples=["hubspot"])]
Secret = Annotated[str, Field(min_length=16, max_length=500)]
InboundStatus = Annotated[vocabulary.InboundEventStatus, one_of(vocabulary.InboundEventStatus)]
Strategy = Annotated[vocabulary.Strategy, one_of(vocabulary.SOURCE_STRATEGIES)]

_EXAMPLE: dict[str, Any] = {
    "name": "hubspot",
    "adapter": "hubspot",
    "secret": "the HubSpot app's client secret",
    "default_strategy": "balanced",
    "auto_approve": False,
    "tier_change_action": "propose",
}


BatonField = Literal[
    "name",
    "tier",
    "status",
    "owner",
    "satisfaction",
    "region",
    "language",
    "industry",
    "annual_value",
]


class SourceMapping(BaseModel):
    """How a CRM's records read as Baton customers (HubSpot and Zoho sources)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "fields": {
                        "Account_Name": "name",
                        "Account_Tier": "tier",
                        "Account_Status": "status",
                        "Owner": "owner",
                        "CSAT": "satisfaction",
                    },
                    "churned_values": ["Churned", "Closed"],
                    "external_ref_prefix": "zoho-",
                    "owner_ref_prefix": "zoho-user-",
                    "modules": ["Accounts"],
                }
            ]
        },
    )

    fields: dict[Annotated[str, Field(min_length=1, max_length=100)], BatonField] = Field(
        description="CRM field (property API name) → the Baton field it holds. `status` is "
        "compared with `churned_values`; `owner` holds the owner's id (or an object with "
        "`id`), matched to a manager's `external_ref` after `owner_ref_prefix`."
    )
    churned_values: list[str] = Field(
        ["churned"], description="Values of the `status` field that mean churned."
    )
    external_ref_prefix: Annotated[str, Field(max_length=64)] = Field(
        "", description="Prepended to the CRM record id to make the customer's `external_ref`."
    )
    owner_ref_prefix: Annotated[str, Field(max_length=64)] = Field(
        "", description="Prepended to the owner id to make the manager's `external_ref`."
    )
    modules: list[str] = Field(
        ["Accounts"], description="Zoho: the modules whose records are customers."
    )


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    name: SourceName = Field(description="Used in the URL: `/v1/webhooks/inbound/{name}`.")
    adapter: Adapter
    secret: Secret | None = Field(
        None, description="The CRM's signing secret; omitted: a `whsec_…` secret is generated."
    )
    signature_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] | None = Field(
        None, description="generic-hmac: the header carrying `sha256=<hex>` (X-Signature-256)."
    )
    enabled: StrictBool = True
    default_strategy: Strategy = Field(
        vocabulary.Strategy.BALANCED, description="For handovers it drafts."
    )
    auto_approve: StrictBool = Field(False, description="Approve the handovers it plans.")
    tier_change_action: Literal["propose", "apply"] = Field(
        "propose", description="When a tier change makes the owner ineligible."
    )
    mapping: SourceMapping | None = Field(
        None, description="hubspot, zoho: which CRM field holds what; omitted: the defaults."
    )
    channel_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{1,64}$")] | None = Field(
        None, description="zoho: the `channel_id` registered with `actions/watch`."
    )


class SourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})

    signature_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] | None = None
    enabled: StrictBool | None = None
    default_strategy: Strategy | None = None
    auto_approve: StrictBool | None = None
    tier_change_action: Literal["propose", "apply"] | None = None
    mapping: SourceMapping | None = None
    channel_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{1,64}$")] | None = None


class SourceRotation(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"grace_hours": 24}]})

    secret: Secret | None = Field(None, description="The new secret; omitted: generated.")
    grace_hours: int | None = Field(None, ge=0, le=720, description="Old secret still accepted.")


_OUT_EXAMPLE: dict[str, Any] = {
    **{k: v for k, v in _EXAMPLE.items() if k != "secret"},
    "id": "5e0c2b1a-3f4d-4c6e-9a8b-7d6c5b4a3f2e",
    "signature_header": None,
    "enabled": True,
    "mapping": None,
    "channel_id": None,
    "previous_secret_expires_at": None,
    "created_at": "2026-11-25T09:00:00Z",
    "updated_at": "2026-11-25T09:00:00Z",
}


class SourceOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [_OUT_EXAMPLE]},
    )

    id: uuid.UUID
    name: str
    adapter: Adapter
    signature_header: str | None
    enabled: bool
    default_strategy: Strategy
    auto_approve: bool
    tier_change_action: Literal["propose", "apply"]
    mapping: SourceMapping | None = Field(
        description="Which CRM field holds what (hubspot, zoho; null: not used)."
    )
    channel_id: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SourceWithSecret(SourceOut):
    """Returned once, at creation or rotation: the only time the secret is shown."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_OUT_EXAMPLE, "secret": "hs-app-secret-0f3c9a"}]}
    )

    secret: str


class ReceivedEvent(BaseModel):
    event_id: str
    id: uuid.UUID
    duplicate: bool


class ReceiptOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "received": 1,
                    "duplicates": 0,
                    "events": [
                        {
                            "event_id": "msg_2Kp",
                            "id": "9c1e2d3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f",
                            "duplicate": False,
                        }
                    ],
                }
            ]
        }
    )

    received: int = Field(description="New events stored and queued for processing.")
    duplicates: int = Field(description="Events already received: acknowledged, not redone.")
    events: list[ReceivedEvent]


class InboundEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source: str
    event_id: str
    type: str | None
    status: InboundStatus
    error: str | None = Field(description="Why it failed, or why it was ignored.")
    result: dict[str, Any] | None = Field(description="What processing did (ids, states).")
    attempts: int
    received_at: datetime
    processed_at: datetime | None
