"""Working on a planned handover's items and checklist: overrides, briefings, tasks."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import guard
from app.errors import Conflict, RuleViolation
from app.handovers import item_repository, repository
from app.handovers.schemas import (
    Briefing,
    HandoverOut,
    ItemOut,
    ItemOverride,
    TaskUpdate,
)
from app.handovers.views import (
    get_handover,
    get_item,
    require_handover,
    require_item,
    require_manager,
    utc_now,
)


async def override_item(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    customer_id: uuid.UUID,
    data: ItemOverride,
    actor: str,
) -> ItemOut:
    """Choose the owner of one customer instead of the engine, before approval.

    The choice is checked against the same hard rules as the engine's (409 listing the
    violations) unless forced with a reason, which is recorded on the item.
    """
    handover = await require_handover(session, handover_id, lock=True)
    if handover.state not in ("draft", "planned"):
        raise Conflict(
            f"Items can be overridden only before approval; the handover is {handover.state}.",
            state=handover.state,
        )
    item = await require_item(session, handover_id, customer_id)
    if item.status not in repository.PENDING_ITEM_STATUSES:
        raise Conflict(f"Item {customer_id} is {item.status} and cannot be overridden.")
    if data.manager_id is None:
        values: dict[str, Any] = {
            "override_manager_id": None,
            "override_reason": None,
            "override_forced": False,
            "override_by": None,
            "override_at": None,
            "status": (
                "pending"
                if handover.state == "draft"
                else "proposed"
                if item.proposed_manager_id is not None
                else "unplaced"
            ),
        }
    else:
        if data.manager_id == handover.from_manager_id:
            raise RuleViolation(
                "The leaving manager cannot keep a customer of their handover.",
                violations=[{"rule": "leaving_manager", "message": "the manager is leaving"}],
            )
        await require_manager(session, data.manager_id, "manager_id")
        violations = await guard.check_move(
            session,
            customer_id=customer_id,
            manager_id=data.manager_id,
            force=data.force,
            exclude_manager_ids=frozenset({handover.from_manager_id}),
        )
        values = {
            "override_manager_id": data.manager_id,
            "override_reason": data.reason,
            "override_forced": bool(violations) and data.force,
            "override_by": actor,
            "override_at": utc_now(),
            "status": "overridden",
        }
    await item_repository.update_item(session, handover_id, customer_id, values)
    return await get_item(session, handover_id=handover_id, customer_id=customer_id)


async def set_briefing(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    customer_id: uuid.UUID,
    data: Briefing,
    actor: str,
) -> ItemOut:
    """Record what the next owner must know about this customer (seed 003 §1.1)."""
    handover = await require_handover(session, handover_id)
    if handover.state in ("cancelled", "rolled_back"):
        raise Conflict(f"The handover is {handover.state}.", state=handover.state)
    await require_item(session, handover_id, customer_id)
    await item_repository.update_item(
        session,
        handover_id,
        customer_id,
        {"briefing": data.model_dump(mode="json"), "briefing_by": actor, "briefing_at": utc_now()},
    )
    return await get_item(session, handover_id=handover_id, customer_id=customer_id)


async def update_task(
    session: AsyncSession, *, handover_id: uuid.UUID, task: str, data: TaskUpdate, actor: str
) -> HandoverOut:
    """Tick (or untick) a checklist task, recording who and when."""
    await require_handover(session, handover_id)
    await repository.set_task(
        session,
        handover_id=handover_id,
        task=task,
        done=data.done,
        actor=actor,
        at=utc_now(),
        note=data.note,
    )
    return await get_handover(session, handover_id=handover_id)
