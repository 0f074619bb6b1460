"""Revenue events in and out."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Currency = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.", examples=["EUR"])
]


class RevenueIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "amount": "12500.00",
                    "currency": "EUR",
                    "occurred_at": "2026-11-20T10:00:00Z",
                    "source": "hubspot",
                    "external_id": "deal-4711",
                }
            ]
        },
    )

    amount: Annotated[
        Decimal,
        Field(
            max_digits=18,
            decimal_places=2,
            description="Negative for a refund or credit note.",
            examples=["12500.00"],
        ),
    ]
    currency: Currency
    occurred_at: AwareDatetime | None = Field(
        None, description="When it was won or paid; default now; never in the future."
    )
    source: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        "api", description="Where it came from: hubspot, billing, import…"
    )
    external_id: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None,
        description="The source's id for it: recording the same (source, external_id) again "
        "returns the stored event (409 if the facts differ).",
    )
    note: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class RevenueOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: uuid.UUID
    amount: Decimal
    currency: str
    occurred_at: datetime
    source: str
    external_id: str | None
    note: str | None
    created_at: datetime


class RevenueImportRow(RevenueIn):
    """A row of a revenue import: the fields of ``POST /v1/customers/{id}/revenue``, the
    customer by its CRM id, and the date required."""

    customer_external_ref: Annotated[str, Field(min_length=1, max_length=200)]
    occurred_at: AwareDatetime


class RevenueImportError(BaseModel):
    """Why one row of the file was not recorded."""

    line: int = Field(description="Line of the file (1 = the first line, the CSV header).")
    customer_external_ref: str | None
    field: str | None
    msg: str


class RevenueImportReport(BaseModel):
    """What a revenue import recorded."""

    format: Literal["csv", "ndjson"]
    mode: Literal["all_or_nothing", "best_effort"]
    rows: int
    created: int
    duplicates: int = Field(
        description="Rows whose (source, external_id) was already recorded: left as they were."
    )
    failed: int
    errors: list[RevenueImportError]
    errors_truncated: bool
