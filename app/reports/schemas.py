"""Reports out: KPIs over a period, portfolios at an instant."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

KpiGrouping = Literal["manager", "team", "region"]
# The keys of SORT_COLUMNS, in its order (a unit test holds the two together).
KpiSort = Literal[
    "key",
    "name",
    "book_start_customers",
    "book_end_customers",
    "book_end_workload",
    "book_end_annual_value",
    "gained",
    "lost",
    "churned",
    "churned_value",
    "retention_rate",
    "active_retention_rate",
    "satisfaction_average",
    "satisfaction_change",
    "received_weight",
    "refusals_received",
]


class Book(BaseModel):
    """Active customers owned at an instant, their workload (tier weights) and annual value
    (today's tier and value: neither is versioned)."""

    customers: int
    workload: int
    annual_value: Decimal


class Retention(BaseModel):
    """Of the customers owned at the start of the period."""

    start_customers: int
    still_active: int = Field(description="Not churned by the end, whoever owns them.")
    still_with_manager: int = Field(description="Active and owned by the same manager at the end.")
    active_rate: float | None
    with_manager_rate: float | None


class Churn(BaseModel):
    """Customers who churned in the period while owned (by this manager, team, region)."""

    customers: int
    annual_value: Decimal


class Satisfaction(BaseModel):
    average: float | None = Field(
        description="Mean of the scores recorded in the period, each attributed to the "
        "customer's owner when it was recorded."
    )
    scores: int
    start: float | None = Field(description="Mean latest score, at the start, of the book then.")
    end: float | None = Field(description="Mean latest score, at the end, of the book then.")
    change: float | None = Field(description="end − start.")


class Handovers(BaseModel):
    handovers_in: int = Field(description="Handovers that brought customers in the period.")
    customers_in: int
    handovers_out: int = Field(description="Handovers that took customers in the period.")
    customers_out: int


class Received(BaseModel):
    """New customers received in the period (every ledger row that started in it)."""

    customers: int
    weight: int
    jain_index: float | None = Field(
        description="Jain's fairness index (Σx)²/(n·Σx²) of the weight received, x per "
        "manager: across the manager's team (manager rows), the team or the region (group "
        "rows), over the managers the report covers. 1 = perfectly even; null = none received."
    )


class KpiRow(BaseModel):
    """KPIs of one manager, team or region over the period."""

    key: str | None = Field(description="The manager id, the team or the region.")
    managers: int
    manager_id: uuid.UUID | None
    name: str | None
    team: str | None
    region: str | None
    level: int | None
    status: str | None
    book_start: Book
    book_end: Book
    gained: int
    gained_by_reason: dict[str, int] = Field(description="Ledger reason of the rows that started.")
    lost: int
    lost_by_reason: dict[str, int] = Field(
        description="Reason of the row that followed each row that ended (`unassigned`: the "
        "customer went to the pool). Churn is counted in `churned`, not here."
    )
    retention: Retention
    churned: Churn
    satisfaction: Satisfaction
    revenue: dict[str, Decimal] = Field(
        description="Revenue events in the period by currency, attributed to the owner then."
    )
    handovers: Handovers
    refusals_received: int = Field(description="Customers who refused this owner in the period.")
    received: Received


class KpiPage(BaseModel):
    """A page of KPI rows for a period; pass ``next_cursor`` back as ``cursor``."""

    period_from: datetime
    period_to: datetime
    group_by: KpiGrouping
    items: list[KpiRow]
    next_cursor: str | None = Field(None, description="Opaque; null on the last page.")


class PortfolioEntry(BaseModel):
    """A customer owned at the instant asked, the owner then and since when."""

    customer_id: uuid.UUID
    name: str
    tier: str
    region: str | None
    annual_value: Decimal | None
    manager_id: uuid.UUID
    manager_name: str
    team: str | None
    owned_since: datetime
    reason: str = Field(description="Ledger reason of the owning row.")
    active: bool = Field(description="Not churned at that instant.")
