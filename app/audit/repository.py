"""SQL for the audit trail."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import AuditEvent
from app.db.rows import rows_as
from app.db.session import transaction_connection


@dataclass(frozen=True, slots=True)
class AuditEventRow:
    """One recorded change."""

    id: int
    at: datetime
    actor: str
    api_key_id: uuid.UUID | None
    role: str | None
    action: str
    method: str
    path: str
    resource_type: str | None
    resource_id: str | None
    status_code: int
    request_id: str | None
    details: dict[str, object] | None


_COLUMNS = (
    "actor",
    "api_key_id",
    "role",
    "action",
    "method",
    "path",
    "resource_type",
    "resource_id",
    "status_code",
    "request_id",
    "details",
)
_INSERT = (
    f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_COLUMNS)))}, ${len(_COLUMNS)}::jsonb)"
)


def event_args(values: dict[str, Any]) -> list[Any]:
    """The values of an event in column order (``details`` as JSON text), as ``INSERT_FROM``
    and ``insert_event`` take them."""
    unknown = set(values) - set(_COLUMNS)
    if unknown:
        raise TypeError(f"audit_events has no column {sorted(unknown)}")
    details = values.get("details")
    args = [values.get(c) for c in _COLUMNS[:-1]]
    return [*args, None if details is None else json.dumps(details)]


def insert_from(source: str, first: int) -> str:
    """An INSERT of one event per row of ``source`` (a CTE), its values the parameters
    ``$first`` on (``event_args``), returning the event's id: for a statement that writes the
    event with the change it records."""
    params = ", ".join(f"${n}" for n in range(first, first + len(_COLUMNS) - 1))
    last = first + len(_COLUMNS) - 1
    return (
        f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) "
        f"SELECT {params}, ${last}::jsonb FROM {source} RETURNING id"
    )


async def insert_event(session: AsyncSession, values: dict[str, Any]) -> None:
    """Append one event (every write request does: on the driver's connection, prepared once
    per connection)."""
    connection = await transaction_connection(session)
    await connection.execute(_INSERT, *event_args(values))


_UPDATE = (
    f"UPDATE audit_events SET ({', '.join(_COLUMNS)}) = "
    f"({', '.join(f'${n}' for n in range(2, len(_COLUMNS) + 1))}, ${len(_COLUMNS) + 1}::jsonb) "
    "WHERE id = $1"
)


async def update_event(session: AsyncSession, event_id: int, values: dict[str, Any]) -> None:
    """Rewrite an event written ahead of the request's end (see ``audit.take_expected``)."""
    connection = await transaction_connection(session)
    await connection.execute(_UPDATE, event_id, *event_args(values))


async def list_page(
    session: AsyncSession, *, filters: list[ColumnElement[bool]], before: int | None, limit: int
) -> list[AuditEventRow]:
    """Events newest first, keyset-paginated on id."""
    stmt = select(*AuditEvent.__table__.c).where(*filters).order_by(AuditEvent.id.desc())
    if before is not None:
        stmt = stmt.where(AuditEvent.id < before)
    return rows_as(AuditEventRow, (await session.execute(stmt.limit(limit))).mappings())


def filters_for(
    *,
    actor: str | None,
    resource_type: str | None,
    resource_id: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses for the given filters."""
    found: list[ColumnElement[bool]] = []
    if actor is not None:
        found.append(AuditEvent.actor == actor)
    if resource_type is not None:
        found.append(AuditEvent.resource_type == resource_type)
    if resource_id is not None:
        found.append(AuditEvent.resource_id == resource_id)
    if action is not None:
        found.append(AuditEvent.action == action)
    if since is not None:
        found.append(AuditEvent.at >= since)
    if until is not None:
        found.append(AuditEvent.at < until)
    return found
