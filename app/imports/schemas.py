"""Import rows (the REST resources' own validation rules, keyed by ``external_ref``) and the
import report."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.assignments.schemas import ViolationsDetected
from app.customers.schemas import CustomerCreate
from app.managers.schemas import ManagerCreate

ImportMode = Literal["all_or_nothing", "best_effort"]
ExportFormat = Literal["csv", "ndjson"]
Ref = Annotated[str, Field(min_length=1, max_length=200, description="Id in the source CRM.")]


class CustomerImportRow(CustomerCreate):
    """A customer row: the fields of ``POST /v1/customers``, with ``external_ref`` required
    (the upsert key) and the owner given by ``manager_id`` or ``manager_external_ref``."""

    external_ref: Ref
    manager_external_ref: Ref | None = Field(
        None, description="The owner by its CRM id; with `manager_id` too, both must agree."
    )


class ManagerImportRow(ManagerCreate):
    """A manager row: the fields of ``POST /v1/managers``, with ``external_ref`` required."""

    external_ref: Ref


class RowError(BaseModel):
    """Why one row of the file was not applied."""

    line: int = Field(description="Line of the file (1 = the first line, the CSV header).")
    external_ref: str | None = Field(None, description="The row's external_ref, when it has one.")
    field: str | None = Field(None, description="The field at fault; null for the whole row.")
    msg: str
    type: str = Field(description="A stable error type (pydantic's, or `duplicate`, ...).")


class ImportReport(ViolationsDetected):
    """What an import did: counts by outcome and the rows it could not apply."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "resource": "customers",
                    "format": "csv",
                    "mode": "best_effort",
                    "rows": 3,
                    "created": 1,
                    "updated": 1,
                    "unchanged": 0,
                    "failed": 1,
                    "owners_changed": 1,
                    "errors": [
                        {
                            "line": 4,
                            "external_ref": "hs-company-3",
                            "field": "tier",
                            "msg": "unknown tier 'gold'",
                            "type": "unknown_tier",
                        }
                    ],
                    "errors_truncated": False,
                }
            ]
        }
    )

    resource: Literal["customers", "managers"]
    format: ExportFormat
    mode: ImportMode
    rows: int = Field(description="Rows read (blank lines and the CSV header not counted).")
    created: int
    updated: int = Field(description="Existing records whose fields changed.")
    unchanged: int = Field(description="Existing records already equal to their row.")
    failed: int = Field(description="Rows not applied (see `errors`).")
    owners_changed: int = Field(
        0, description="Customers whose owner was set by the import (ledger reason `import`)."
    )
    owners_refused: int = Field(
        0,
        description="`best_effort`: rows whose owner the placement guard refused (listed in "
        "`errors` with type `rule_violation`); their other fields were applied.",
    )
    errors: list[RowError] = Field(description="Row errors in line order, at most 1000.")
    errors_truncated: bool = Field(description="More errors than listed.")
