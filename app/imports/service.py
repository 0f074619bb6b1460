"""Bulk import (validate every row, stage, check, upsert, set owners) and streamed export."""

from __future__ import annotations

import dataclasses
import functools
import operator
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.assignments import compliance, guard, loading
from app.assignments.repository import move_customers
from app.audit import service as audit
from app.db.session import SessionFactory
from app.engine.guard import intake_implies_ownership
from app.engine.rules import CUSTOMER_FIELDS
from app.errors import InvalidInput
from app.events import outbox
from app.imports import copy, repository
from app.imports.parsing import Format, Record, read_csv, read_ndjson
from app.imports.repository import CUSTOMERS, MANAGERS, Resource
from app.imports.schemas import (
    CustomerImportRow,
    ExportFormat,
    ImportMode,
    ImportReport,
    ManagerImportRow,
    RowError,
)
from app.observability.metrics import IMPORT_ROWS
from app.rules.service import current_rules

BATCH_ROWS = 5_000
MOVE_BATCH = 10_000
MAX_ERRORS = 1_000

# Columns an export writes that an import accepts and ignores, so an export file can be edited
# and imported back as it is.
_READ_ONLY = frozenset({"id", "version", "created_at", "updated_at"})
_LIST_SEPARATOR = ";"


class ImportRejected(InvalidInput):
    """An all-or-nothing import had invalid rows: nothing was applied."""

    code = "import_rejected"
    title = "Import rejected"


@dataclass(frozen=True)
class _Spec:
    resource: Resource
    model: type[BaseModel]
    to_record: Callable[[BaseModel, int, int], tuple[Any, ...]]
    required: frozenset[str]
    # fields where an empty CSV cell means null (the rest: the cell is left out)
    nullable: frozenset[str]
    lists: frozenset[str] = frozenset()


@functools.cache
def _bits(resource: Resource) -> dict[str, int]:
    """The mask bit of each upserted field, by the name the file gives it."""
    return {
        (column if column != "tier_code" else "tier"): resource.bit(column)
        for column, _ in resource.fields
    }


def _mask(resource: Resource, fields_set: set[str]) -> int:
    bits = _bits(resource)
    mask = 0
    for name in fields_set:
        mask |= bits.get(name, 0)
    return mask


def _customer_record(row: BaseModel, line: int, mask: int) -> tuple[Any, ...]:
    assert isinstance(row, CustomerImportRow)
    return (
        line,
        row.external_ref,
        row.name,
        row.tier,
        row.status,
        row.region,
        row.language,
        row.industry,
        row.annual_value,
        row.satisfaction,
        row.pinned,
        row.manager_id,
        row.manager_external_ref,
        row.manager_id is not None,
        mask,
    )


def _manager_record(row: BaseModel, line: int, mask: int) -> tuple[Any, ...]:
    assert isinstance(row, ManagerImportRow)
    return (
        line,
        row.external_ref,
        row.name,
        row.email,
        row.level,
        row.capacity,
        row.status,
        row.accepting_new,
        row.region,
        row.languages,
        row.industries,
        row.team,
        mask,
    )


def _nullable(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name for name, f in model.model_fields.items() if not f.is_required() and f.default is None
    )


SPECS = {
    "customers": _Spec(
        CUSTOMERS,
        CustomerImportRow,
        _customer_record,
        required=frozenset({"external_ref", "name", "tier"}),
        nullable=_nullable(CustomerImportRow),
    ),
    "managers": _Spec(
        MANAGERS,
        ManagerImportRow,
        _manager_record,
        required=frozenset({"external_ref", "name", "email", "level", "capacity"}),
        nullable=_nullable(ManagerImportRow),
        lists=frozenset({"languages", "industries"}),
    ),
}


@dataclass
class _Tally:
    rows: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    truncated: bool = False

    def fail(self, errors: list[RowError]) -> None:
        self.failed += 1
        room = MAX_ERRORS - len(self.errors)
        self.errors.extend(errors[: max(room, 0)])
        self.truncated = self.truncated or len(errors) > room


_SKIP, _TEXT, _LIST, _BOOL = range(4)


@functools.cache
def _cell_kinds(spec: _Spec) -> dict[str, int]:
    """How each CSV column becomes the model's input (decided once per resource, not per
    cell): dropped (read-only export columns), split into a list, read as a boolean, or text."""
    kinds = dict.fromkeys(_READ_ONLY, _SKIP)
    for name in spec.model.model_fields:
        kinds[name] = (
            _LIST if name in spec.lists else _BOOL if _is_boolean(spec.model, name) else _TEXT
        )
    return kinds


def _from_csv(spec: _Spec, fields: dict[str, Any]) -> dict[str, Any]:
    """A CSV row as the model's input: read-only export columns dropped, list cells split,
    empty cells null for nullable fields and left out for the others (their default)."""
    kinds = _cell_kinds(spec)
    data: dict[str, Any] = {}
    for key, value in fields.items():
        kind = kinds.get(key, _TEXT)
        if kind == _SKIP:
            continue
        if value[:1] == "'":
            value = copy.unescape_cell(value)  # a formula escaped by an export
        if value == "":
            if key in spec.nullable:
                data[key] = None
            continue
        if kind == _TEXT:
            data[key] = value
        elif kind == _LIST:
            data[key] = [v.strip() for v in value.split(_LIST_SEPARATOR) if v.strip()]
        else:
            data[key] = _cell_as_bool(value)
    return data


_LAX_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


@functools.cache
def _is_boolean(model: type[BaseModel], key: str) -> bool:
    field = model.model_fields.get(key)
    return field is not None and bool in (field.annotation, *get_args(field.annotation))


def _cell_as_bool(value: str) -> bool | str:
    """A CSV cell for a boolean field (``true``, ``false``, ``yes``, ``0``...) as a bool: CSV
    has only text, and the API's booleans take only JSON true/false. Anything else is left as
    text for validation to refuse."""
    try:
        return _LAX_BOOL.validate_python(value)
    except ValidationError:
        return value


def _input(spec: _Spec, fields: dict[str, Any], fmt: Format) -> dict[str, Any]:
    """A parsed record as the model's input."""
    if fmt == "csv":
        return _from_csv(spec, fields)
    return {k: v for k, v in fields.items() if k not in _READ_ONLY}


def _ref(fields: dict[str, Any]) -> str | None:
    ref = fields.get("external_ref")
    return ref if isinstance(ref, str) and ref else None


def _unknown_tier(record: Record, row: BaseModel, tiers: frozenset[str]) -> list[RowError]:
    if not isinstance(row, CustomerImportRow) or row.tier in tiers:
        return []
    if record.fields is None:  # a row that failed to parse never reaches this check
        return []
    return [
        RowError(
            line=record.line,
            external_ref=_ref(record.fields),
            field="tier",
            msg=f"unknown tier '{row.tier}'",
            type="unknown_tier",
        )
    ]


def _validate(
    spec: _Spec, record: Record, fmt: Format, tiers: frozenset[str]
) -> tuple[BaseModel | None, list[RowError]]:
    fields = record.fields
    if fields is None:
        return None, [RowError(line=record.line, msg=record.error or "invalid row", type="row")]
    try:
        row = spec.model.model_validate(_input(spec, fields, fmt))
    except ValidationError as exc:
        return None, [
            RowError(
                line=record.line,
                external_ref=_ref(fields),
                field=".".join(str(p) for p in e["loc"]) or None,
                msg=e["msg"],
                type=e["type"],
            )
            for e in exc.errors(include_url=False, include_input=False)
        ]
    errors = _unknown_tier(record, row, tiers)
    return (None, errors) if errors else (row, [])


VALIDATE_ROWS = 500


@functools.cache
def _many(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _validate_many(
    spec: _Spec, records: list[Record], fmt: Format, tiers: frozenset[str]
) -> list[tuple[Record, BaseModel | None, list[RowError]]]:
    """Each record with its row, or its errors. The rows are validated as one list (one call
    into pydantic-core per batch instead of one per row); a batch with an invalid row is
    validated again row by row, for each row's own errors."""
    inputs = [_input(spec, r.fields, fmt) for r in records if r.fields is not None]
    if len(inputs) == len(records):
        try:
            rows = _many(spec.model).validate_python(inputs)
        except ValidationError:
            pass
        else:
            out: list[tuple[Record, BaseModel | None, list[RowError]]] = []
            for record, row in zip(records, rows, strict=True):
                errors = _unknown_tier(record, row, tiers)
                out.append((record, None, errors) if errors else (record, row, []))
            return out
    return [(record, *_validate(spec, record, fmt, tiers)) for record in records]


async def import_rows(
    session: AsyncSession,
    *,
    resource: str,
    chunks: AsyncIterator[bytes],
    fmt: Format,
    mode: ImportMode,
    actor: str,
    force: bool = False,
) -> ImportReport:
    """Read, validate and apply an import in the session's transaction.

    Every row is validated with the resource's own rules and staged; then the checks that need
    the database run set-based on the staging table. In ``all_or_nothing`` mode any error
    raises ``ImportRejected`` (422, nothing applied); in ``best_effort`` mode the failed rows
    are left out and listed. Customers' owners pass the placement guard and are written with
    ledger rows (reason ``import``): new customers with their owner at once, existing ones in
    batches of moves. Memory holds one batch of rows and at most ``MAX_ERRORS`` errors.
    """
    spec = SPECS[resource]
    tiers = await repository.tier_codes(session)
    stage = await repository.create_stage(session, spec.resource)
    tally = _Tally()
    batch: list[tuple[Any, ...]] = []
    records = (
        read_csv(chunks, columns=_csv_columns(spec), required=spec.required)
        if fmt == "csv"
        else read_ndjson(chunks)
    )
    pending: list[Record] = []

    def stage_rows() -> None:
        for record, row, errors in _validate_many(spec, pending, fmt, tiers):
            if row is None:
                tally.fail(errors)
            else:
                mask = _mask(spec.resource, row.model_fields_set)
                batch.append(spec.to_record(row, record.line, mask))
        pending.clear()

    async for record in records:
        tally.rows += 1
        pending.append(record)
        if len(pending) >= VALIDATE_ROWS:
            stage_rows()
        if len(batch) >= BATCH_ROWS:
            await repository.copy_rows(session, stage, spec.resource, batch)
            batch = []
    stage_rows()
    if batch:
        await repository.copy_rows(session, stage, spec.resource, batch)

    if resource == "customers":
        await repository.check_customers(session, stage)
    else:
        await repository.check_managers(session, stage)
    sql_failed, sql_errors = await repository.error_summary(session, stage, limit=MAX_ERRORS)
    tally.failed += sql_failed
    tally.errors.extend(RowError.model_validate(e, from_attributes=True) for e in sql_errors)
    tally.errors.sort(key=lambda e: (e.line, e.field or ""))
    tally.truncated = (
        tally.truncated or len(tally.errors) > MAX_ERRORS or sql_failed > len(sql_errors)
    )
    del tally.errors[MAX_ERRORS:]

    report = ImportReport(
        resource=resource,  # type: ignore[arg-type]
        format=fmt,
        mode=mode,
        rows=tally.rows,
        created=0,
        updated=0,
        unchanged=0,
        failed=tally.failed,
        errors=tally.errors,
        errors_truncated=tally.truncated,
    )
    if tally.failed and mode == "all_or_nothing":
        IMPORT_ROWS.labels(resource, "rejected").inc(tally.rows)
        raise ImportRejected(
            f"{tally.failed} of {tally.rows} rows are invalid; nothing was imported. Fix them, "
            "or send mode=best_effort to import the valid rows.",
            errors=[
                {
                    "loc": ["body", e.line, *([e.field] if e.field else [])],
                    "msg": e.msg,
                    "type": e.type,
                    "line": e.line,
                    "field": e.field,
                    "external_ref": e.external_ref,
                }
                for e in tally.errors
            ],
            errors_truncated=tally.truncated,
            rows=tally.rows,
            failed=tally.failed,
        )
    if sql_failed:
        await repository.discard_failed(session, stage)

    if resource == "customers":
        applied = await _apply_customers(
            session, stage, actor=actor, mode=mode, force=force, rows=tally.rows
        )
        report.created, report.updated = applied.created, applied.updated
        report.owners_changed, report.owners_refused = applied.owners_changed, len(applied.refused)
        report.errors = sorted([*report.errors, *applied.refused], key=lambda e: e.line)[
            :MAX_ERRORS
        ]
    else:
        async with repository.bulk_joins(session, tally.rows):
            report.created, report.updated = await repository.upsert(session, stage, spec.resource)
    report.unchanged = tally.rows - tally.failed - report.created - report.updated
    # What the import changed may leave current owners non-compliant: recorded and reported.
    # For customers the guard's decisions settle every owner it allowed; the others (and the
    # customers whose rule-visible fields changed) are checked here.
    if resource == "customers":
        scope = compliance.Scope.customers(applied.recheck)
    else:
        async with repository.bulk_joins(session, tally.rows):
            ids = await repository.imported_ids(session, stage, spec.resource)
        scope = compliance.Scope.managers(ids)
    found = await compliance.record(session, scope, cause="import", actor=actor)
    report.violations_detected = compliance.summary(found)
    report.violations_detected_count = len(found)
    await repository.drop_stage(session, stage)
    for outcome in ("created", "updated", "unchanged", "failed"):
        IMPORT_ROWS.labels(resource, outcome).inc(getattr(report, outcome))
    return report


@dataclass(frozen=True)
class _Applied:
    created: int
    updated: int
    owners_changed: int
    refused: list[RowError]
    # customers whose owner may hold a violation the guard's decisions do not settle
    recheck: list[uuid.UUID]


# The customer columns a compliance check reads: the fields the rules can name (the tier
# under its column's name), and the status (only active customers are checked).
_RULE_COLUMNS = frozenset({"tier_code" if f == "tier" else f for f in CUSTOMER_FIELDS} | {"status"})
_WATCHED = tuple(c for c, _ in CUSTOMERS.fields if c in _RULE_COLUMNS)


async def _apply_customers(
    session: AsyncSession, stage: str, *, actor: str, mode: ImportMode, force: bool, rows: int
) -> _Applied:
    """Upsert the staged customers and give them the owners the file names.

    The owners asked for are planned before anything is written, and every one passes the
    placement guard (the same hard rules as a manual move) on the facts the import leaves:
    existing customers as updated, new ones as staged, and each owner's workload and intake
    counted as the file fills them. A refused owner rejects the whole import in
    ``all_or_nothing`` mode; in ``best_effort`` mode it is left out and listed. With ``force``
    (admin and operator keys) refused owners are set one by one, with the rules they override
    in the ledger note and the audit trail.

    New customers are inserted with their owner, and their ledger rows (reason ``import``)
    written, in one statement: no customer is inserted into the pool and then moved. Owners of
    existing customers change through the ledger in batches.

    The customers whose ownership the caller must check afterwards are returned: those whose
    rule-visible fields changed, those given an owner past the guard, and, when the rule set
    reads facts a move changes, every moved one. An owner the guard allowed otherwise holds no
    violation (``intake_implies_ownership``), and a move resolves the customer's open one."""
    async with repository.bulk_joins(session, rows):
        planned = await repository.plan_owner_moves(session, stage)
        changed = (
            await repository.update_changed(session, stage, CUSTOMERS, watch=_WATCHED)
            if planned.existing_rows
            else repository.Changed(0, [])
        )
    updated = changed.count
    recheck = changed.watched_ids
    guarded = (
        await _guard_owner_moves(session, stage, force=force)
        if planned.moves
        else _Guarded([], [], recheck_moved=False)
    )
    refused, forced = guarded.refused, guarded.forced
    refs = (
        await repository.refs_of_lines(session, stage, [r.line for r in refused]) if refused else {}
    )
    errors = [
        RowError(
            line=r.line,
            external_ref=refs.get(r.line),
            field="manager",
            msg="the owner breaks hard rules: " + "; ".join(v.message for v in r.broken),
            type="rule_violation",
        )
        for r in refused
    ]
    if refused and mode == "all_or_nothing":
        raise ImportRejected(
            f"{len(refused)} row(s) give a customer an owner the hard rules refuse; nothing "
            "was imported. Fix them, send mode=best_effort to import the rest, or force=true "
            "(operators and admins) to override.",
            errors=[
                {"loc": ["body", e.line, "manager"], "msg": e.msg, "type": e.type, "line": e.line}
                for e in errors[:MAX_ERRORS]
            ],
            rows=len(refused),
            failed=len(refused),
        )
    left_out = [r.seq for r in (*refused, *forced)]
    await repository.disallow_staged_moves(session, stage, left_out)
    at = datetime.now(UTC)
    events = planned.moves > 0 and await outbox.wants_ownership_events(session)
    if planned.moves:
        await repository.lock_moved_customers(session, stage)
    async with repository.bulk_joins(session, rows):
        inserted = await repository.insert_customers_with_owners(
            session, stage, at=at, actor=actor, returning=events or guarded.recheck_moved
        )
        if guarded.recheck_moved:
            recheck += inserted.customer_ids
        if inserted.created < planned.new_rows:
            # Someone else created some of these customers since the plan: they are updated
            # like the others, and their owners set through the ledger (and checked after,
            # since the guard saw them as new).
            again = await repository.update_changed(session, stage, CUSTOMERS, watch=_WATCHED)
            updated += again.count
            recheck += again.watched_ids
            recheck += await repository.adopt_concurrent_creations(session, stage)
    if events and inserted.customer_ids:
        await outbox.emit_ownership_changes(
            session,
            [
                (customer, None, owner)
                for customer, owner in zip(inserted.customer_ids, inserted.manager_ids, strict=True)
            ],
            reason="import",
            actor=actor,
            at=at,
        )
    moved = inserted.owned
    if left_out:
        customer_of = await repository.moved_customer_ids(session, stage, left_out)
        await repository.drop_staged_moves(session, stage, left_out)
    for f in forced:
        moved += await move_customers(
            session,
            customer_ids=[customer_of[f.seq]],
            manager_ids=[f.manager_id],
            reason="import",
            actor=actor,
            at=at,
            note=guard.forced_note(f.broken, None),
        )
        recheck.append(customer_of[f.seq])
    if forced:
        audit.details(session)["forced"] = [
            {
                "customer_id": str(customer_of[f.seq]),
                "manager_id": str(f.manager_id),
                "rules": [v.to_dict() for v in f.broken],
            }
            for f in forced[:1000]
        ]
    async for customer_ids, manager_ids in repository.owner_moves(session, stage, batch=MOVE_BATCH):
        moved += await move_customers(
            session,
            customer_ids=customer_ids,
            manager_ids=manager_ids,
            reason="import",
            actor=actor,
            at=at,
        )
        if guarded.recheck_moved:
            recheck += customer_ids
    await repository.drop_moves(session, stage)
    return _Applied(inserted.created, updated, moved, errors, recheck)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A planned move the placement guard refused, or that was forced past it."""

    seq: int
    line: int
    manager_id: uuid.UUID
    broken: list[engine.Violation]


@dataclass(frozen=True)
class _Guarded:
    refused: list[_Checked]
    forced: list[_Checked]
    # the rule set reads facts a move changes: an allowed owner may still hold a violation
    recheck_moved: bool


async def _guard_owner_moves(session: AsyncSession, stage: str, *, force: bool) -> _Guarded:
    """The staged moves the placement guard refuses, and the ones forced past it. Each owner's
    facts follow the file (workload, intake room, per-tier intake), so a cap holds across the
    rows of one import as it does across separate requests. Moves are read in batches, so
    memory holds one batch of customers whatever the file's size."""
    rules = (await current_rules(session)).rules
    scope = await repository.move_scope(session, stage, tiers=bool(rules.placement.tier_caps))
    owners = await loading.load_managers(
        session, include=scope.manager_ids, rules=rules, for_tiers=scope.tiers
    )
    managers = {m.id: m for m in owners}
    tiers = {t.code: t for t in await loading.load_tiers(session)}
    refused: list[_Checked] = []
    forced: list[_Checked] = []
    capped = frozenset(rules.placement.tier_caps)
    async for batch in repository.staged_moves(session, stage, batch=MOVE_BATCH):
        existing = {
            c.id: c
            for c in await loading.load_customers(session, [m[1] for m in batch if not m[4]])
        }
        for seq, customer_id, manager_id, line, new, *facts in batch:
            # a customer the import creates, as the guard sees it: its staged fields, no
            # owner yet, never moved (what ``loading.load_customers`` gives once inserted)
            customer = engine.Customer(customer_id, *facts) if new else existing[customer_id]
            manager = managers.get(manager_id)
            if manager is None:  # a departed owner: already a row error
                continue
            tier = tiers[customer.tier]
            broken = engine.placement_violations(customer, manager, tier, rules)
            if broken and not force:
                refused.append(_Checked(seq, line, manager_id, broken))
                continue
            if broken:
                forced.append(_Checked(seq, line, manager_id, broken))
            managers[manager_id] = _received(manager, tier, capped)
            former = managers.get(customer.manager_id) if customer.manager_id else None
            if former is not None:
                managers[former.id] = _with_load(former, workload=former.workload - tier.weight)
    return _Guarded(refused, forced, not intake_implies_ownership(rules))


_MANAGER_FIELDS = tuple(f.name for f in dataclasses.fields(engine.Manager))
_manager_facts = operator.attrgetter(*_MANAGER_FIELDS)
_WORKLOAD = _MANAGER_FIELDS.index("workload")
_INTAKE_ROOM = _MANAGER_FIELDS.index("intake_room")
_TIER_INTAKE = _MANAGER_FIELDS.index("tier_intake")


def _with_load(
    manager: engine.Manager,
    *,
    workload: int,
    intake_room: int | None = None,
    tier_intake: tuple[tuple[str, int, int], ...] | None = None,
) -> engine.Manager:
    """``dataclasses.replace`` of the facts a received customer changes, built positionally:
    the guard makes one per move, and ``replace`` costs twice as much."""
    values = list(_manager_facts(manager))
    values[_WORKLOAD] = workload
    if intake_room is not None:
        values[_INTAKE_ROOM] = intake_room
    if tier_intake is not None:
        values[_TIER_INTAKE] = tier_intake
    return engine.Manager(*values)


def _received(manager: engine.Manager, tier: engine.Tier, capped: frozenset[str]) -> engine.Manager:
    """The manager's facts after receiving one new customer of ``tier`` (its count per tier
    kept for the tiers the rule set caps, the only ones the guard reads)."""
    room = None if manager.intake_room is None else manager.intake_room - 1
    if tier.code not in capped:
        return _with_load(manager, workload=manager.workload + tier.weight, intake_room=room)
    counts = {code: (day, week) for code, day, week in manager.tier_intake}
    day, week = counts.get(tier.code, (0, 0))
    counts[tier.code] = (day + 1, week + 1)
    return _with_load(
        manager,
        workload=manager.workload + tier.weight,
        intake_room=room,
        tier_intake=tuple((code, d, w) for code, (d, w) in counts.items()),
    )


def _csv_columns(spec: _Spec) -> frozenset[str]:
    return frozenset(spec.model.model_fields) | _READ_ONLY


# --- export -----------------------------------------------------------------------------


async def export_rows(
    factory: SessionFactory,
    *,
    resource: str,
    fmt: ExportFormat,
    where: copy.ExportFilter | None = None,
    formulas: copy.Formulas = "escape",
) -> AsyncGenerator[bytes, None]:
    """The resource's rows (those ``where`` selects), ordered by id, as CSV or NDJSON chunks,
    formatted and streamed by Postgres in one snapshot (see :mod:`app.imports.copy`); CSV
    cells that would run as spreadsheet formulas are escaped unless ``formulas="keep"``."""
    async for chunk in copy.export_stream(
        factory, resource=resource, fmt=fmt, where=where, formulas=formulas
    ):
        yield chunk
