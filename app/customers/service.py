"""Customer use cases, including manual assignment through the ledger."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.assignments import compliance, guard
from app.assignments import repository as ledger
from app.audit import service as audit
from app.core.concurrency import Precondition
from app.core.pagination import (
    Page,
    cursor_value,
    decode_cursor,
    keyset_page,
)
from app.customers import repository
from app.customers.repository import CustomerRow
from app.customers.schemas import (
    CustomerChangeOut,
    CustomerCreate,
    CustomerOut,
    CustomerSort,
    CustomerStatus,
    CustomerUpdate,
    LedgerRowOut,
    OwnerAtOut,
)
from app.db.reads import Reader
from app.errors import Conflict, InvalidInput, NotFound
from app.events import outbox
from app.managers import repository as managers


async def get_customer(session: AsyncSession, *, customer_id: uuid.UUID) -> CustomerOut:
    """The customer, or NotFound."""
    row = await repository.get(session, customer_id)
    if row is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    return CustomerOut.model_validate(row)


async def read_customer(reader: Reader, *, customer_id: uuid.UUID) -> CustomerOut:
    """The customer as committed, outside any transaction (the GET route), or NotFound."""
    row = await repository.read(reader, customer_id)
    if row is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    return CustomerOut.model_validate(dict(row))


async def read_customer_by_ref(reader: Reader, *, external_ref: str) -> CustomerOut:
    """The customer with this CRM id (``external_ref``), or NotFound."""
    row = await repository.read_by_ref(reader, external_ref)
    if row is None:
        raise NotFound(f"No customer has external_ref {external_ref!r}.")
    return CustomerOut.model_validate(dict(row))


async def list_customers(
    reader: Reader,
    *,
    cursor: str | None,
    limit: int,
    tier: str | None = None,
    status: CustomerStatus | None = None,
    region: str | None = None,
    manager_id: uuid.UUID | None = None,
    unassigned: bool | None = None,
    q: str | None = None,
    sort: CustomerSort | None = None,
) -> Page[CustomerOut]:
    """Customers by id or by ``sort`` (``-`` first: descending), filtered (outside any
    transaction, like GET by id)."""
    given = {"tier": tier, "status": status, "region": region, "manager_id": manager_id}
    filters: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    if unassigned is not None:
        filters["pool" if unassigned else "owned"] = None
    if q:
        filters["q"] = repository.contains_pattern(q)
    key = sort.removeprefix("-") if sort else None
    descending = bool(sort and sort.startswith("-"))
    if cursor and key is None:
        filters["after"] = decode_cursor(cursor, (uuid.UUID,))[0]
    elif cursor and key is not None:
        # The cursor carries the sort it was made for: a page of another order is refused.
        made_for, after_key, filters["after"] = decode_cursor(
            cursor, (str, _CURSOR_TYPES[key], uuid.UUID)
        )
        if made_for != sort:
            raise InvalidInput(
                f"The cursor belongs to sort={made_for!r}, not {sort!r}; start again.",
                errors=[{"loc": ["query", "cursor"], "msg": "cursor of another sort"}],
            )
        filters["after_key"] = _decimal_key(after_key) if key == "annual_value" else after_key
    rows = await repository.read_page(
        reader, filters=filters, limit=limit + 1, sort=key, descending=descending
    )
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=lambda r: CustomerOut.model_validate(dict(r)),
        key=lambda r: (
            [str(r["id"])] if key is None else [sort, _cursor_key(r["sort_key"]), str(r["id"])]
        ),
    )
    return Page[CustomerOut](items=items, next_cursor=next_cursor)


# What a sorted page's cursor holds for each sort key (a decimal travels as a string).
_CURSOR_TYPES: dict[str, type] = {
    "name": str,
    "tier": int,
    "annual_value": str,
    "updated_at": datetime,
}


def _decimal_key(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise InvalidInput(
            "The cursor is not valid; pass back a next_cursor unchanged.",
            errors=[
                {"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "cursor_invalid"}
            ],
        ) from None


def _cursor_key(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, Decimal) else value


async def _tier_weight(session: AsyncSession, code: str) -> int:
    weight = await repository.tier_weight(session, code)
    if weight is None:
        raise InvalidInput(
            f"Unknown tier '{code}'.",
            errors=[{"loc": ["body", "tier"], "msg": f"unknown tier '{code}'"}],
        )
    return weight


async def assign_manually(
    session: AsyncSession,
    *,
    customer: CustomerRow,
    manager_id: uuid.UUID | None,
    force: bool,
    actor: str,
    role: str | None,
    note: str | None = None,
) -> list[compliance.Found]:
    """Give ``customer`` to ``manager_id`` (None = pool) through the ledger, reason ``manual``.

    The placement guard decides (built-in hard rules and the rule set's eligibility rules),
    locking the manager row so two concurrent assignments cannot both pass the capacity
    check; a violation is a 409 unless ``force`` (admin and operator only). A forced move
    records the rules it overrode in the ledger note and the audit trail, and the violation
    it leaves is recorded and returned.
    """
    found, _ = await _assign(
        session,
        customer=customer,
        manager_id=manager_id,
        force=force,
        actor=actor,
        role=role,
        note=note,
    )
    return found


async def _assign(
    session: AsyncSession,
    *,
    customer: CustomerRow,
    manager_id: uuid.UUID | None,
    force: bool,
    actor: str,
    role: str | None,
    note: str | None = None,
    manager_locked: guard.ManagerLocked | None = None,
) -> tuple[list[compliance.Found], CustomerRow]:
    """``assign_manually``, answering also the customer's row after the move. The move's
    statement writes the request's audit event too when one is expected (after the guard,
    so the event carries the rules a forced move overrode)."""
    violations: list[engine.Violation] = []
    if manager_id is not None and manager_id != customer.manager_id:
        violations = await guard.check_move(
            session,
            customer_id=customer.id,
            manager_id=manager_id,
            force=force,
            role=role,
            manager_locked=manager_locked,
        )
        if violations:
            note = guard.forced_note(violations, note)
        if any(v.rule == "capacity" for v in violations):
            workload = int(await managers.workload(session, manager_id) or 0)
            weight = await _tier_weight(session, customer.tier)
            await outbox.emit(
                session,
                "manager.capacity_exceeded",
                {
                    "manager_id": manager_id,
                    "workload": workload + weight,
                    "customer_id": customer.id,
                    "actor": actor,
                    "reason": note,
                },
            )
    moved, audit_id = await ledger.move_one_customer(
        session,
        customer_id=customer.id,  # every caller passes a row it locked
        manager_id=manager_id,
        reason="manual",
        actor=actor,
        at=datetime.now(UTC),
        note=note,
        audit_event=audit.take_expected(session),
    )
    if audit_id is not None:
        audit.written_with(session, audit_id)
    after = moved or customer
    if not violations:
        return [], after
    found = await compliance.record(
        session, compliance.Scope.customers([customer.id]), cause="forced", actor=actor
    )
    return found, after


async def create_customer(
    session: AsyncSession,
    *,
    data: CustomerCreate,
    force: bool,
    actor: str,
    role: str | None = None,
) -> CustomerOut:
    """Create a customer in the pool, then assign it manually when ``manager_id`` is given
    (through the placement guard)."""
    guard.authorize_force(force, role)
    await _tier_weight(session, data.tier)
    if data.external_ref and await repository.external_ref_taken(
        session, data.external_ref, exclude=None
    ):
        raise Conflict("Another customer already has this external_ref.", field="external_ref")
    values = data.model_dump(exclude={"manager_id", "tier"})
    customer_id = await repository.insert(session, {**values, "tier_code": data.tier})
    if data.manager_id is not None:
        row = await repository.get(session, customer_id, lock=True)
        assert row is not None
        await assign_manually(
            session,
            customer=row,
            manager_id=data.manager_id,
            force=force,
            actor=actor,
            role=role,
        )
    return await get_customer(session, customer_id=customer_id)


async def update_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    data: CustomerUpdate,
    force: bool,
    actor: str,
    role: str | None = None,
    precondition: Precondition | None = None,
) -> CustomerChangeOut:
    """Change a customer's fields; a new ``manager_id`` is a manual assignment through the
    placement guard. A change of the facts rules read (tier, region, language …) that makes
    the current owner non-compliant is accepted, recorded as a violation and returned."""
    guard.authorize_force(force, role)
    values = data.model_dump(exclude_unset=True)
    move = "manager_id" in values
    new_owner = values.pop("manager_id", None)
    manager_locked: guard.ManagerLocked | None = None
    if new_owner is not None and not values:
        # A manual move alone (the hot path): the customer's and the new owner's locks, and
        # the rule set in force, in one round trip.
        locked = await repository.lock_for_move(session, customer_id, new_owner)
        row = locked[0] if locked is not None else None
        manager_locked = guard.ManagerLocked(*locked[1:]) if locked is not None else None
    else:
        row = await repository.get(session, customer_id, lock=True)
    if row is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    if precondition is not None:
        precondition.check(row.version, f"Customer {customer_id}")
    tier_code = values.pop("tier", row.tier)
    if tier_code != row.tier:
        await _tier_weight(session, tier_code)
        values["tier_code"] = tier_code
    if values.get("external_ref") and await repository.external_ref_taken(
        session, values["external_ref"], exclude=customer_id
    ):
        raise Conflict("Another customer already has this external_ref.", field="external_ref")
    if values:
        await repository.update_fields(session, customer_id, values)
    if "tier_code" in values:
        await outbox.emit(
            session,
            "customer.tier_changed",
            {
                "customer_id": customer_id,
                "old_tier": row.tier,
                "tier": tier_code,
                "manager_id": row.manager_id,
                "actor": actor,
            },
            customer_id=customer_id,
        )
    found: list[compliance.Found] = []
    after: CustomerRow | None = None if values else row  # None: changed, to be read again
    if move and new_owner != row.manager_id:
        found, after = await _assign(
            session,
            customer=dataclasses.replace(row, tier=tier_code),
            manager_id=new_owner,
            force=force,
            actor=actor,
            role=role,
            manager_locked=manager_locked,
        )
    elif values:
        found = await compliance.record(
            session,
            compliance.Scope.customers([customer_id]),
            cause="customer_updated",
            actor=actor,
        )
    if after is None:
        after = await repository.get(session, customer_id)
        if after is None:
            raise NotFound(f"Customer {customer_id} does not exist.")
    return CustomerChangeOut.model_validate(
        {
            **{name: getattr(after, name) for name in _OUT_FIELDS},
            "violations_detected": compliance.summary(found),
            "violations_detected_count": len(found),
        }
    )


# The fields of a customer's response, all read from its row.
_OUT_FIELDS = tuple(CustomerOut.model_fields)


async def delete_customer(
    session: AsyncSession, *, customer_id: uuid.UUID, precondition: Precondition | None = None
) -> None:
    """Delete a customer that was never owned; history is never deleted."""
    row = await repository.get(session, customer_id, lock=True)
    if row is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    if precondition is not None:
        precondition.check(row.version, f"Customer {customer_id}")
    has_history = await repository.has_history(session, customer_id)
    if has_history:
        raise Conflict(
            f"Customer {customer_id} has ownership history, which is never deleted; "
            "set status to 'churned' instead."
        )
    await repository.delete(session, customer_id)


async def get_history(
    session: AsyncSession, *, customer_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[LedgerRowOut]:
    """The customer's ledger rows, newest first."""
    await get_customer(session, customer_id=customer_id)
    after = cursor_value(cursor, int)
    rows = await ledger.history(session, customer_id, after=after, limit=limit + 1)
    items, next_cursor = keyset_page(
        rows, limit=limit, item=LedgerRowOut.model_validate, key=lambda r: [r.id]
    )
    return Page[LedgerRowOut](items=items, next_cursor=next_cursor)


async def get_owner_at(
    session: AsyncSession, *, customer_id: uuid.UUID, at: datetime | None
) -> OwnerAtOut:
    """Who owned the customer at ``at`` (default now), from the ledger."""
    await get_customer(session, customer_id=customer_id)
    instant = at or datetime.now(UTC)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    row = await ledger.owner_at(session, customer_id, instant)
    return OwnerAtOut(
        customer_id=customer_id,
        at=instant,
        manager_id=row.manager_id if row else None,
        assignment=LedgerRowOut.model_validate(row) if row else None,
    )


async def update_customers(
    session: AsyncSession, *, customer_ids: list[uuid.UUID], values: dict[str, Any], actor: str
) -> int:
    """Set the same tier, region or pin on many customers (a re-division), set-based, with a
    ``customer.tier_changed`` event per customer whose tier changes. The caller records the
    violations the change leaves. Returns how many customers changed."""
    if not customer_ids:
        return 0
    if "tier" in values:
        await _tier_weight(session, values["tier"])
    count, changed = await repository.update_many(session, customer_ids, values)
    events = [
        (
            "customer.tier_changed",
            {
                "customer_id": customer_id,
                "old_tier": old,
                "tier": tier,
                "manager_id": owner,
                "actor": actor,
            },
            customer_id,
        )
        for customer_id, old, tier, owner in changed
        if old != tier
    ]
    if events:
        await outbox.emit_many(session, events)
    return count
