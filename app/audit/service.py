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
_EXPECTED = "audit_expected"
_WRITTEN = "audit_written"
_UNCHANGED = "audit_unchanged"


def details(session: AsyncSession) -> dict[str, Any]:
    """Details the request's audit event will carry (e.g. the hard rules a forced move
    overrode); the route writes them with the event when it succeeds."""
    found: dict[str, Any] = session.info.setdefault(_DETAILS, {})
    return found


def take_details(session: AsyncSession) -> dict[str, Any] | None:
    """The details collected for this request's audit event, removed from the session."""
    found: dict[str, Any] | None = session.info.pop(_DETAILS, None)
    return found or None


def expect(session: AsyncSession, event: dict[str, Any]) -> None:
    """The event (every column but ``details``) the request will record if it succeeds: set
    by the HTTP layer before the endpoint runs (see ``take_expected``)."""
    session.info[_EXPECTED] = event


def take_expected(session: AsyncSession) -> dict[str, Any] | None:
    """The expected event with the details collected so far, for a change that writes it in
    its own statement (one round trip fewer); ``record`` then writes nothing more for it.
    None when no event is expected (no HTTP request, or one whose event is known only after)."""
    event = session.info.pop(_EXPECTED, None)
    if event is None:
        return None
    found = session.info.get(_DETAILS)
    written = {**event, "details": dict(found) if found else None}
    session.info[_WRITTEN] = written
    return written


def written_with(session: AsyncSession, event_id: int) -> None:
    """Note the id of the event a change wrote with itself (``take_expected``)."""
    written = session.info.get(_WRITTEN)
    if written is not None:
        written["id"] = event_id


def unchanged(session: AsyncSession) -> None:
    """Said by a write route's use case that changed nothing (a dry run): like a read, the
    request records no event."""
    session.info[_UNCHANGED] = True


async def record(session: AsyncSession, **values: Any) -> None:
    """Append an event; called before the request's transaction commits. When a change
    already wrote this request's event (``take_expected``), nothing is written, or that event
    is corrected if the request ended otherwise than expected. A request that changed nothing
    (``unchanged``) writes none."""
    session.info.pop(_EXPECTED, None)
    if session.info.pop(_UNCHANGED, False):
        return
    written = session.info.pop(_WRITTEN, None)
    if written is None or "id" not in written:
        await repository.insert_event(session, values)
        return
    event_id = written.pop("id")
    if written != values:
        await repository.update_event(session, event_id, values)


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
