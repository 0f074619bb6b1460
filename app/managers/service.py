"""Manager use cases."""

from __future__ import annotations

import dataclasses
import uuid

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.concurrency import Precondition
from app.core.pagination import (
    Page,
    cursor_value,
    decode_cursor,
    keyset_page,
)
from app.db.models import Manager
from app.db.reads import Reader
from app.errors import Conflict, InvalidInput, NotFound
from app.events import outbox
from app.managers import repository
from app.managers.schemas import (
    ManagerCreate,
    ManagerOut,
    ManagerSort,
    ManagerStatus,
    ManagerUpdate,
)


def to_out(row: object) -> ManagerOut:
    """Build the public view, computing utilization from workload and capacity."""
    data = (
        dataclasses.asdict(row) if isinstance(row, repository.ManagerLoadRow) else dict(row)  # type: ignore[call-overload]
    )
    capacity = data["capacity"]
    data["utilization"] = round(data["workload"] / capacity, 4) if capacity else None
    return ManagerOut.model_validate(data)


async def get_manager(session: AsyncSession, *, manager_id: uuid.UUID) -> ManagerOut:
    """The manager with workload, or NotFound."""
    row = await repository.get(session, manager_id)
    if row is None:
        raise NotFound(f"Manager {manager_id} does not exist.")
    return to_out(row)


async def read_manager(reader: Reader, *, manager_id: uuid.UUID) -> ManagerOut:
    """The manager with workload as committed, outside any transaction, or NotFound."""
    row = await repository.read(reader, manager_id)
    if row is None:
        raise NotFound(f"Manager {manager_id} does not exist.")
    return to_out(row)


async def read_manager_by_ref(reader: Reader, *, external_ref: str) -> ManagerOut:
    """The manager with this CRM id (``external_ref``), or NotFound."""
    row = await repository.read_by_ref(reader, external_ref)
    if row is None:
        raise NotFound(f"No manager has external_ref {external_ref!r}.")
    return to_out(row)


async def list_managers(
    session: AsyncSession,
    *,
    cursor: str | None,
    limit: int,
    status: ManagerStatus | None = None,
    region: str | None = None,
    team: str | None = None,
    level: int | None = None,
    q: str | None = None,
    sort: ManagerSort | None = None,
) -> Page[ManagerOut]:
    """Managers by id or by ``sort`` (``-`` first: descending), filtered."""
    filters: list[ColumnElement[bool]] = []
    if status is not None:
        filters.append(Manager.status == status)
    if region is not None:
        filters.append(Manager.region == region)
    if team is not None:
        filters.append(Manager.team == team)
    if level is not None:
        filters.append(Manager.level == level)
    if q:
        filters.append(Manager.name.icontains(q, autoescape=True))
    key = sort.removeprefix("-") if sort else None
    descending = bool(sort and sort.startswith("-"))
    after, after_key = None, None
    if key is None:
        after = cursor_value(cursor, uuid.UUID)
    elif cursor:
        made_for, after_key, after = decode_cursor(
            cursor, (str, str if key == "name" else float, uuid.UUID)
        )
        if made_for != sort:
            raise InvalidInput(
                f"The cursor belongs to sort={made_for!r}, not {sort!r}; start again.",
                errors=[{"loc": ["query", "cursor"], "msg": "cursor of another sort"}],
            )
    rows = await repository.list_page(
        session,
        filters=filters,
        after=after,
        limit=limit + 1,
        sort=key,
        descending=descending,
        after_key=after_key,
    )
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=to_out,
        key=lambda r: [str(r["id"])] if key is None else [sort, r["sort_key"], str(r["id"])],
    )
    return Page[ManagerOut](items=items, next_cursor=next_cursor)


async def _check_unique(
    session: AsyncSession, *, email: str | None, external_ref: str | None, exclude: uuid.UUID | None
) -> None:
    field = await repository.find_conflict(
        session, email=email, external_ref=external_ref, exclude=exclude
    )
    if field is not None:
        raise Conflict(f"Another manager already has this {field}.", field=field)


async def create_manager(session: AsyncSession, *, data: ManagerCreate) -> ManagerOut:
    """Create a manager; email and external_ref are unique."""
    await _check_unique(session, email=data.email, external_ref=data.external_ref, exclude=None)
    manager_id = await repository.insert(session, data.model_dump())
    return await get_manager(session, manager_id=manager_id)


async def update_manager(
    session: AsyncSession,
    *,
    manager_id: uuid.UUID,
    data: ManagerUpdate,
    precondition: Precondition | None = None,
) -> ManagerOut:
    """Change a manager's fields. Leaving is done through a handover, not by editing status."""
    values = data.model_dump(exclude_unset=True)
    await _lock_checked(session, manager_id, precondition)
    await _check_unique(
        session,
        email=values.get("email"),
        external_ref=values.get("external_ref"),
        exclude=manager_id,
    )
    if values:
        await repository.update_fields(session, manager_id, values)
    return await get_manager(session, manager_id=manager_id)


async def _lock_checked(
    session: AsyncSession, manager_id: uuid.UUID, precondition: Precondition | None
) -> None:
    """Lock the manager row and check the client's If-Match against its version."""
    row = await repository.lock(session, manager_id)
    if row is None:
        raise NotFound(f"Manager {manager_id} does not exist.")
    if precondition is not None:
        precondition.check(row.version, f"Manager {manager_id}")


async def delete_manager(
    session: AsyncSession, *, manager_id: uuid.UUID, precondition: Precondition | None = None
) -> None:
    """Delete a manager who owns nobody and has no ownership history."""
    await _lock_checked(session, manager_id, precondition)
    manager = await get_manager(session, manager_id=manager_id)
    owned = await repository.owns_customers(session, manager_id)
    if owned:
        raise Conflict(
            f"Manager {manager_id} still owns {manager.customer_count} active customer(s) "
            "(and possibly churned ones); move the portfolio with a handover first.",
            customer_count=manager.customer_count,
        )
    history = await repository.has_history(session, manager_id)
    if history:
        raise Conflict(
            f"Manager {manager_id} appears in the ownership history, which is never deleted; "
            "set status to 'departed' instead."
        )
    await repository.delete(session, manager_id)


MANY_FIELDS = frozenset(
    {"team", "region", "level", "capacity", "status", "accepting_new", "languages", "industries"}
)


async def update_managers(
    session: AsyncSession, *, changes: list[tuple[uuid.UUID, dict[str, object]]]
) -> int:
    """Change many managers at once (a re-division), set-based; each change names only the
    fields it sets (among ``MANY_FIELDS``). Every manager must exist."""
    unknown = {f for _, values in changes for f in values} - MANY_FIELDS
    if unknown:
        raise ValueError(f"not changeable in bulk: {', '.join(sorted(unknown))}")
    changed = await repository.update_many(session, changes)
    if changed != len({manager_id for manager_id, _ in changes}):
        raise NotFound("Some of the managers to change do not exist.")
    return changed


async def set_status(
    session: AsyncSession,
    *,
    manager_id: uuid.UUID,
    status: ManagerStatus,
    handover_id: uuid.UUID | None = None,
) -> None:
    """Move a manager to ``status`` as a handover requires (departing, departed, on leave, back
    to active) and announce it with ``manager.status_changed``; nothing when it already is."""
    previous = await repository.set_status(session, manager_id, status)
    if previous is not None:
        await outbox.emit(
            session,
            "manager.status_changed",
            {
                "manager_id": manager_id,
                "status": status,
                "previous_status": previous,
                "handover_id": handover_id,
            },
        )
