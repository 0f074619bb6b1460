"""Recording revenue: facts the KPIs attribute to the owner at the time through the ledger."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import (
    Page,
    cursor_value,
    keyset_page,
)
from app.customers import repository as customers_repository
from app.errors import Conflict, InvalidInput, NotFound
from app.imports.parsing import Format, read_csv, read_ndjson
from app.revenue import repository
from app.revenue.schemas import (
    RevenueImportError,
    RevenueImportReport,
    RevenueImportRow,
    RevenueOut,
)
from app.satisfaction.service import CLOCK_SKEW, refuse_future

IMPORT_BATCH = 5_000
MAX_ERRORS = 1_000


async def _require_customer(session: AsyncSession, customer_id: uuid.UUID) -> None:
    if await customers_repository.get(session, customer_id) is None:
        raise NotFound(f"Customer {customer_id} does not exist.")


async def record_revenue(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    amount: Decimal,
    currency: str,
    occurred_at: datetime | None = None,
    source: str = "api",
    external_id: str | None = None,
    note: str | None = None,
) -> tuple[RevenueOut, bool]:
    """Store one revenue event (also for imports and CRM webhooks); returns it and whether it
    is new. The same ``(source, external_id)`` again returns the stored event, or is a 409 when
    its customer, amount, currency or date differ. A date in the future is a 422."""
    at = occurred_at or datetime.now(UTC)
    refuse_future(at, field="occurred_at")
    await _require_customer(session, customer_id)
    row = await repository.insert_event(
        session,
        {
            "customer_id": customer_id,
            "amount": amount,
            "currency": currency,
            "occurred_at": at,
            "source": source,
            "external_id": external_id,
            "note": note,
        },
    )
    if row is not None:
        return RevenueOut.model_validate(row), True
    assert external_id is not None  # only a (source, external_id) pair can conflict
    stored = await repository.by_external_id(session, source, external_id)
    assert stored is not None
    same = (stored.customer_id, stored.amount, stored.currency) == (
        customer_id,
        amount,
        currency,
    ) and (occurred_at is None or stored.occurred_at == at)
    if not same:
        raise Conflict(
            f"Revenue event '{external_id}' from '{source}' was recorded with other facts.",
            field="external_id",
        )
    return RevenueOut.model_validate(stored), False


async def list_revenue(
    session: AsyncSession, *, customer_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[RevenueOut]:
    """A customer's revenue events, newest entry first."""
    await _require_customer(session, customer_id)
    after = cursor_value(cursor, int)
    rows = await repository.list_page(session, customer_id, after=after, limit=limit + 1)
    items, next_cursor = keyset_page(
        rows, limit=limit, item=RevenueOut.model_validate, key=lambda r: [r.id]
    )
    return Page[RevenueOut](items=items, next_cursor=next_cursor)


class RevenueImportRejected(InvalidInput):
    """An all-or-nothing revenue import had invalid rows: nothing was recorded."""

    code = "import_rejected"
    title = "Import rejected"


async def import_revenue(
    session: AsyncSession,
    *,
    chunks: AsyncIterator[bytes],
    fmt: Format,
    mode: Literal["all_or_nothing", "best_effort"],
) -> RevenueImportReport:
    """Record revenue events from a CSV or NDJSON body in the session's transaction, a batch
    at a time (one statement to find the customers, one to insert). Rows already recorded
    under their (source, external_id) are counted as duplicates and left alone. In
    ``all_or_nothing`` mode any invalid row (unknown customer, future date, bad value) is a
    422 and nothing is recorded; in ``best_effort`` the others are."""
    report = RevenueImportReport(
        format=fmt,
        mode=mode,
        rows=0,
        created=0,
        duplicates=0,
        failed=0,
        errors=[],
        errors_truncated=False,
    )
    latest = datetime.now(UTC) + CLOCK_SKEW

    def fail(line: int, ref: str | None, field: str | None, msg: str) -> None:
        report.failed += 1
        if len(report.errors) < MAX_ERRORS:
            report.errors.append(
                RevenueImportError(line=line, customer_external_ref=ref, field=field, msg=msg)
            )
        else:
            report.errors_truncated = True

    async def record(batch: list[tuple[int, RevenueImportRow]]) -> None:
        known = await repository.customer_ids(
            session, sorted({row.customer_external_ref for _, row in batch})
        )
        rows = []
        for line, row in batch:
            customer_id = known.get(row.customer_external_ref)
            if customer_id is None:
                fail(line, row.customer_external_ref, "customer_external_ref", "no such customer")
                continue
            rows.append(
                {**row.model_dump(exclude={"customer_external_ref"}), "customer_id": customer_id}
            )
        created = await repository.insert_many(session, rows)
        report.created += created
        report.duplicates += len(rows) - created

    columns = frozenset(RevenueImportRow.model_fields)
    required = frozenset({"customer_external_ref", "amount", "currency", "occurred_at"})
    records = (
        read_csv(chunks, columns=columns, required=required)
        if fmt == "csv"
        else read_ndjson(chunks)
    )
    batch: list[tuple[int, RevenueImportRow]] = []
    async for rec in records:
        report.rows += 1
        if rec.fields is None:
            fail(rec.line, None, None, rec.error or "unreadable row")
            continue
        ref = rec.fields.get("customer_external_ref")
        try:
            row = RevenueImportRow.model_validate(rec.fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(
                rec.line,
                ref if isinstance(ref, str) else None,
                ".".join(map(str, first["loc"])) or None,
                first["msg"],
            )
            continue
        if row.occurred_at > latest:
            fail(rec.line, row.customer_external_ref, "occurred_at", "must not be in the future")
            continue
        batch.append((rec.line, row))
        if len(batch) >= IMPORT_BATCH:
            await record(batch)
            batch = []
    await record(batch)
    report.errors.sort(key=lambda e: e.line)
    if report.failed and mode == "all_or_nothing":
        raise RevenueImportRejected(
            f"{report.failed} of {report.rows} rows are invalid; nothing was recorded. Fix them, "
            "or send mode=best_effort to record the valid rows.",
            errors=[
                {
                    "loc": ["body", e.line, *([e.field] if e.field else [])],
                    "msg": e.msg,
                    "type": "row",
                    "line": e.line,
                    "customer_external_ref": e.customer_external_ref,
                }
                for e in report.errors
            ],
            errors_truncated=report.errors_truncated,
            rows=report.rows,
            failed=report.failed,
        )
    return report
