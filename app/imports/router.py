"""HTTP routes for bulk import and export of customers and managers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import StreamingResponse

from app.api.auth import STAFF, allow
from app.api.deps import CurrentCaller, LongSession
from app.api.idempotency import streamed_body
from app.api.routing import BatonRoute, PrefixedRouter
from app.assignments import guard
from app.auth.roles import Role
from app.customers.schemas import CustomerStatus
from app.errors import problem_responses
from app.imports import service
from app.imports.copy import ExportFilter, Formulas
from app.imports.parsing import MEDIA_TYPES, Format, format_of, import_body
from app.imports.schemas import ExportFormat, ImportMode, ImportReport
from app.managers.schemas import ManagerStatus

# Imports stream their body in batches, so they may be far larger than other requests.
IMPORT_MAX_BODY_BYTES = 4 * 1024**3

imports = PrefixedRouter(
    prefix="/imports",
    tags=["imports"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF, write=(Role.operator, Role.integration))],
)
exports = PrefixedRouter(
    prefix="/exports",
    tags=["imports"],
    route_class=BatonRoute,
    dependencies=[allow(read=(*STAFF, Role.integration), write=())],
)

_CUSTOMERS_CSV = (
    "external_ref,name,tier,region,language,annual_value,manager_external_ref\n"
    "hs-company-1,Hangzhou Precision Parts Co.,key,east,zh,480000.00,hs-owner-4411\n"
    'hs-company-2,"Lotus Foods, Ltd.",standard,south,en,,\n'
)
_CUSTOMERS_NDJSON = (
    '{"external_ref": "hs-company-1", "name": "Hangzhou Precision Parts Co.", "tier": "key", '
    '"manager_external_ref": "hs-owner-4411"}\n'
    '{"external_ref": "hs-company-2", "name": "Lotus Foods, Ltd.", "tier": "standard"}\n'
)
_MANAGERS_CSV = (
    "external_ref,name,email,level,capacity,region,languages,team\n"
    "hs-owner-4411,Li Na,li.na@example.com,4,120,east,zh;en,east-enterprise\n"
)
_MANAGERS_NDJSON = (
    '{"external_ref": "hs-owner-4411", "name": "Li Na", "email": "li.na@example.com", '
    '"level": 4, "capacity": 120, "languages": ["zh", "en"]}\n'
)


_IMPORT_ERRORS = problem_responses(415)
_IMPORT_ERRORS[415] = {
    **_IMPORT_ERRORS[415],
    "description": "The body is neither CSV nor NDJSON, or not UTF-8",
}

Mode = Annotated[
    ImportMode,
    Query(
        description="`all_or_nothing`: any invalid row rejects the whole file (422 listing every "
        "row error); `best_effort`: apply the valid rows and report the others."
    ),
]


BodyFormat = Annotated[
    Format | None,
    Query(
        alias="format",
        description="The body's format when it is sent as `application/octet-stream` (as "
        "generated clients send a file; 422 without it); with `text/csv` or "
        "`application/x-ndjson` it may be left out (422 if it disagrees).",
    ),
]


Force = Annotated[
    bool,
    Query(
        description="Customers: make owner moves the hard rules refuse, recording the rules "
        "overridden (admin and operator keys only)."
    ),
]


async def _import(
    request: Request,
    session: LongSession,
    caller: CurrentCaller,
    resource: str,
    mode: ImportMode,
    declared: Format | None,
    force: bool = False,
) -> ImportReport:
    guard.authorize_force(force, caller.role)
    fmt = format_of(request.headers.get("content-type"), declared)
    return await service.import_rows(
        session,
        resource=resource,
        chunks=streamed_body(request),
        fmt=fmt,
        mode=mode,
        actor=caller.name,
        force=force,
    )


@imports.post(
    "/customers",
    response_model=ImportReport,
    summary="Import customers (CSV or NDJSON)",
    responses=_IMPORT_ERRORS,
    openapi_extra=import_body(_CUSTOMERS_CSV, _CUSTOMERS_NDJSON),
    max_body_size=IMPORT_MAX_BODY_BYTES,
)
async def import_customers(
    request: Request,
    session: LongSession,
    caller: CurrentCaller,
    mode: Mode = "all_or_nothing",
    force: Force = False,
    fmt: BodyFormat = None,
) -> ImportReport:
    """Create or update customers by `external_ref` from a CSV (`text/csv`, header row naming
    the columns) or NDJSON (`application/x-ndjson`) body, streamed in batches.

    Each row is validated with the same rules as `POST /v1/customers`; the tier must exist.
    A field absent from a row (a missing column, an empty CSV cell of a field with a default,
    a key left out of a JSON line) keeps its current value on update; an empty cell clears an
    optional field. `manager_external_ref` or `manager_id` gives the customer's owner: it is
    written to the ledger with reason `import` when it differs from the current one (never
    sends a customer to the pool), after the placement guard: an owner the hard rules refuse
    rejects the import (`all_or_nothing`) or is left out and listed (`best_effort`), unless
    `force`. Owners that changed fields make non-compliant are listed in
    `violations_detected`. Columns of an export (`id`, `version`, `created_at`,
    `updated_at`) are accepted and ignored, so an export can be edited and imported back.

    The whole import is one transaction. Errors give the line, the field and why: duplicate
    `external_ref`s in the file, unknown tier or owner, a departed owner."""
    return await _import(request, session, caller, "customers", mode, fmt, force)


@imports.post(
    "/managers",
    response_model=ImportReport,
    summary="Import managers (CSV or NDJSON)",
    responses=_IMPORT_ERRORS,
    openapi_extra=import_body(_MANAGERS_CSV, _MANAGERS_NDJSON),
    max_body_size=IMPORT_MAX_BODY_BYTES,
)
async def import_managers(
    request: Request,
    session: LongSession,
    caller: CurrentCaller,
    mode: Mode = "all_or_nothing",
    fmt: BodyFormat = None,
) -> ImportReport:
    """Create or update managers by `external_ref` from CSV or NDJSON, validated with the rules
    of `POST /v1/managers`. In CSV, `languages` and `industries` are `;`-separated. Emails
    must be unique (case-insensitive) across the file and the managers already stored. Absent
    fields keep their value on update; modes and errors as for customers. A manager who
    still owns active customers cannot be imported as `departed` (a row error: leaving is a
    handover); owners a change makes non-compliant are listed in `violations_detected`."""
    return await _import(request, session, caller, "managers", mode, fmt)


async def _export(
    request: Request,
    resource: str,
    fmt: ExportFormat,
    where: ExportFilter,
    formulas: Formulas,
) -> StreamingResponse:
    media = MEDIA_TYPES[fmt] + ("; charset=utf-8" if fmt == "csv" else "")
    extension = "csv" if fmt == "csv" else "ndjson"
    rows = service.export_rows(
        request.app.state.session_factory,
        resource=resource,
        fmt=fmt,
        where=where,
        formulas=formulas,
    )
    return StreamingResponse(
        await _started(rows),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{resource}.{extension}"'},
    )


async def _started(stream: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    """``stream`` with its first chunk read before the response starts: the export's session,
    its settings and the start of its COPY fail (a database away, a statement refused) while
    an error can still be answered as one (503 problem+json), not after a 200 and its headers
    went out, which would leave the client a cut-off file."""
    try:
        first = await anext(stream, None)
    except BaseException:
        await stream.aclose()
        raise

    async def chunks() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield first
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    return chunks()


ExportFormatQuery = Annotated[
    ExportFormat, Query(alias="format", description="`csv` (with a header row) or `ndjson`.")
]
FormulasQuery = Annotated[
    Formulas,
    Query(
        description="CSV only. `escape` (default): a cell starting with `=`, `+`, `-`, `@`, a "
        "tab or a carriage return gets a leading apostrophe, so a spreadsheet shows it as text "
        "instead of running it as a formula (an import of the file removes the apostrophe "
        "again). `keep`: cells exactly as stored, for programs that are not spreadsheets."
    ),
]
TeamQuery = Annotated[str | None, Query(max_length=200)]
_EXPORT_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The rows, streamed.",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@exports.get(
    "/customers",
    summary="Export customers (CSV or NDJSON)",
    response_class=StreamingResponse,
    responses={**_EXPORT_CONTENT, **problem_responses()},
)
async def export_customers(
    request: Request,
    fmt: ExportFormatQuery = "csv",
    tier: Annotated[str | None, Query(max_length=64)] = None,
    status: CustomerStatus | None = None,
    manager_id: Annotated[uuid.UUID | None, Query(description="Only this owner's.")] = None,
    team: Annotated[
        str | None, Query(max_length=200, description="Only customers owned by this team.")
    ] = None,
    formulas: FormulasQuery = "escape",
) -> StreamingResponse:
    """Customers, ordered by id, with their owner's `manager_external_ref`, optionally only
    those of a tier, a status, an owner or an owner's team. Postgres formats and streams the
    rows in one statement: bounded memory, and one consistent snapshot however long the
    export runs. The columns match what `POST /v1/imports/customers` accepts."""
    where = ExportFilter(tier=tier, status=status, manager_id=manager_id, team=team)
    return await _export(request, "customers", fmt, where, formulas)


@exports.get(
    "/managers",
    summary="Export managers (CSV or NDJSON)",
    response_class=StreamingResponse,
    responses={**_EXPORT_CONTENT, **problem_responses()},
)
async def export_managers(
    request: Request,
    fmt: ExportFormatQuery = "csv",
    status: ManagerStatus | None = None,
    team: TeamQuery = None,
    formulas: FormulasQuery = "escape",
) -> StreamingResponse:
    """Managers, ordered by id, optionally only those of a status or a team, streamed as for
    customers; in CSV `languages` and `industries` are `;`-separated. The columns match what
    `POST /v1/imports/managers` accepts."""
    return await _export(request, "managers", fmt, ExportFilter(status=status, team=team), formulas)
