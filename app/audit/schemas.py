"""Audit trail payloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEventOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "at": "2026-11-25T10:00:00Z",
                    "actor": "ops-console",
                    "api_key_id": "6f1c0f7e-3c1e-4c39-9f61-2b2f7b1e8a10",
                    "role": "operator",
                    "action": "update_customer",
                    "method": "PATCH",
                    "path": "/v1/customers/0b7e…",
                    "resource_type": "customers",
                    "resource_id": "0b7e…",
                    "status_code": 200,
                    "request_id": "9c1d…",
                    "details": None,
                }
            ]
        },
    )

    id: int
    at: datetime
    actor: str = Field(description="The name of the API key that made the change.")
    api_key_id: uuid.UUID | None
    role: str | None
    action: str = Field(description="The operation, e.g. `update_customer`.")
    method: str
    path: str
    resource_type: str | None
    resource_id: str | None
    status_code: int
    request_id: str | None
    details: dict[str, Any] | None = Field(
        None,
        description="What else the change decided, e.g. `forced`: the hard rules a forced "
        "assignment overrode; `review: skipped`: a placement applied without a reviewed plan.",
    )
