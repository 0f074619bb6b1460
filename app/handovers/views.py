"""Reading handovers and their items, and what every handover use case starts from: the
handover (locked) or 404, a manager or 422, and the audited step from one state to the next."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import Page, cursor_key, cursor_value, keyset_page
from app.db.models import Handover
from app.errors import InvalidInput, NotFound
from app.events import outbox
from app.events.names import HANDOVER_STATE_EVENTS
from app.handovers import item_repository, repository
from app.handovers.item_repository import ItemRow
from app.handovers.repository import HandoverRow
from app.handovers.schemas import (
    AuditEntry,
    ChecklistOut,
    HandoverOut,
    HandoverReason,
    HandoverState,
    ItemOut,
    ItemStatus,
    OverrideOut,
    TaskOut,
)
from app.handovers.states import allowed_actions, next_state
from app.managers import repository as managers_repository
from app.managers.repository import ManagerLoadRow


def utc_now() -> datetime:
    return datetime.now(UTC)


async def _outs(session: AsyncSession, rows: Sequence[HandoverRow]) -> list[HandoverOut]:
    """Build public views for several handovers with three batched queries."""
    ids = [r.id for r in rows]
    if not ids:
        return []
    counts = await repository.counts_for(session, ids)
    tasks = await repository.tasks_for(session, ids)
    events = await repository.events_for(session, ids)
    outs = []
    for row in rows:
        task_outs = [TaskOut.model_validate(t) for t in tasks.get(row.id, [])]
        done = sum(t.done for t in task_outs)
        outs.append(
            HandoverOut.model_validate(
                {
                    **dataclasses.asdict(row),
                    "allowed_actions": allowed_actions(row.state),
                    "counts": counts[row.id],
                    "checklist": ChecklistOut(
                        tasks=task_outs,
                        done=done,
                        total=len(task_outs),
                        progress=round(done / len(task_outs), 4) if task_outs else 0.0,
                    ),
                    "audit": [AuditEntry.model_validate(e) for e in events.get(row.id, [])],
                }
            )
        )
    return outs


async def get_handover(session: AsyncSession, *, handover_id: uuid.UUID) -> HandoverOut:
    """The handover with counts, checklist and audit trail, or NotFound."""
    row = await repository.get(session, handover_id)
    if row is None:
        raise NotFound(f"Handover {handover_id} does not exist.")
    return (await _outs(session, [row]))[0]


async def list_handovers(
    session: AsyncSession,
    *,
    cursor: str | None,
    limit: int,
    state: HandoverState | None = None,
    manager_id: uuid.UUID | None = None,
    reason: HandoverReason | None = None,
) -> Page[HandoverOut]:
    """Handovers newest first, filtered by state, leaving manager and reason."""
    filters: list[ColumnElement[bool]] = []
    if state is not None:
        filters.append(Handover.state == state)
    if manager_id is not None:
        filters.append(Handover.from_manager_id == manager_id)
    if reason is not None:
        filters.append(Handover.reason == reason)
    key = cursor_key(cursor, (datetime, uuid.UUID))
    after = None if key is None else (key[0], key[1])
    rows = await repository.list_page(session, filters=filters, after=after, limit=limit + 1)
    page, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=lambda row: row,
        key=lambda row: [row.created_at.isoformat(), str(row.id)],
    )
    return Page[HandoverOut](items=await _outs(session, page), next_cursor=next_cursor)


def item_out(row: ItemRow) -> ItemOut:
    """The public view of one item."""
    override = None
    if row.override_manager_id is not None:
        override = OverrideOut(
            manager_id=row.override_manager_id,
            reason=row.override_reason,
            forced=row.override_forced,
            by=row.override_by,
            at=row.override_at,
        )
    return ItemOut.model_validate(
        {
            **dataclasses.asdict(row),
            "score": float(row.score) if row.score is not None else None,
            "reasons": list(row.reasons or []),
            "override": override,
        }
    )


async def list_items(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    cursor: str | None,
    limit: int,
    status: Sequence[ItemStatus] = (),
) -> Page[ItemOut]:
    """The handover's customers by id, with proposal, override, briefing and outcome."""
    await require_handover(session, handover_id)
    after = cursor_value(cursor, uuid.UUID)
    rows = await item_repository.list_items(
        session, handover_id=handover_id, statuses=status, after=after, limit=limit + 1
    )
    items, next_cursor = keyset_page(
        rows, limit=limit, item=item_out, key=lambda row: [str(row.customer_id)]
    )
    return Page[ItemOut](items=items, next_cursor=next_cursor)


async def get_item(
    session: AsyncSession, *, handover_id: uuid.UUID, customer_id: uuid.UUID
) -> ItemOut:
    """One item, or NotFound."""
    return item_out(await require_item(session, handover_id, customer_id))


async def require_handover(
    session: AsyncSession, handover_id: uuid.UUID, *, lock: bool = False
) -> HandoverRow:
    row = await repository.get(session, handover_id, lock=lock)
    if row is None:
        raise NotFound(f"Handover {handover_id} does not exist.")
    return row


async def require_item(
    session: AsyncSession, handover_id: uuid.UUID, customer_id: uuid.UUID
) -> ItemRow:
    item = await item_repository.get_item(session, handover_id, customer_id)
    if item is None:
        raise NotFound(f"Customer {customer_id} is not part of handover {handover_id}.")
    return item


async def record_transition(
    session: AsyncSession,
    handover: HandoverRow,
    action: str,
    *,
    actor: str,
    at: datetime,
    values: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> str:
    """Move the handover to the state ``action`` leads to, with an audit entry."""
    target = next_state(handover.state, action)
    await repository.update_handover(session, handover.id, {**(values or {}), "state": target})
    await repository.add_event(
        session,
        handover_id=handover.id,
        action=action,
        from_state=handover.state,
        to_state=target,
        actor=actor,
        at=at,
        detail=detail,
    )
    if target in HANDOVER_STATE_EVENTS:
        await outbox.emit(
            session,
            HANDOVER_STATE_EVENTS[target],
            {
                "handover_id": handover.id,
                "from_manager_id": handover.from_manager_id,
                "reason": handover.reason,
                "state": target,
                "previous_state": handover.state,
                "actor": actor,
                "detail": detail,
            },
        )
    return target


def unknown_manager(manager_id: uuid.UUID, field: str) -> InvalidInput:
    return InvalidInput(
        f"Manager {manager_id} does not exist.",
        errors=[{"loc": ["body", field], "msg": "unknown manager"}],
    )


async def require_manager(
    session: AsyncSession, manager_id: uuid.UUID, field: str
) -> ManagerLoadRow:
    row = await managers_repository.get(session, manager_id)
    if row is None:
        raise unknown_manager(manager_id, field)
    return row
