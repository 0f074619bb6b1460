"""Audit use cases: record a change (in the transaction that makes it), list the trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import repository
from app.audit.schemas import AuditEventOut
from app.core.pagination import (
    Page,
    cursor_value,
    keyset_page,
)

_DETAILS = "audit_details"


def details(session: AsyncSession) -> dict[str, Any]:
    """Details the request's audit event will carry (e.g. the hard rules a forced move
    overrode); the route writes them with the event when it succeeds."""
    found: dict[str, Any] = session.info.setdefault(_DETAILS, {})
    return found


def take_details(session: AsyncSession) -> dict[str, Any] | None:
    """The details collected for this request's audit event, removed from the session."""
    found: dict[str, Any] | None = session.info.pop(_DETAILS, None)
    return found or None


async def record(session: AsyncSession, **values: Any) -> None:
    """Append an event; called before the request's transaction commits."""
    await repository.insert_event(session, values)


async def list_events(
    session: AsyncSession,
    *,
    cursor: str | None,
    limit: int,
    actor: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[AuditEventOut]:
    """Events newest first, filtered."""
    before = cursor_value(cursor, int)
    filters = repository.filters_for(
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        since=since,
        until=until,
    )
    rows = await repository.list_page(session, filters=filters, before=before, limit=limit + 1)
    items, next_cursor = keyset_page(
        rows, limit=limit, item=AuditEventOut.model_validate, key=lambda r: [r.id]
    )
    return Page[AuditEventOut](items=items, next_cursor=next_cursor)
