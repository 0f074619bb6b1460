"""After execution: a customer refuses the transfer, the whole handover is rolled back, or a
covered portfolio returns to its manager when the leave ends (``due_cover_returns`` +
``return_cover`` for the worker)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import compliance
from app.assignments import service as assignments
from app.assignments.repository import move_customers
from app.errors import Conflict
from app.events import outbox
from app.handovers import execution_repository, item_repository, notifications, repository
from app.handovers.repository import HandoverRow
from app.handovers.schemas import (
    ActionIn,
    ItemOut,
    RestoreOut,
    Unrestored,
)
from app.handovers.states import next_state
from app.handovers.views import (
    get_handover,
    get_item,
    record_transition,
    require_handover,
    require_item,
    require_manager,
    utc_now,
)
from app.managers import service as managers
from app.settings import get_settings
from app.vocabulary import ManagerStatus


class RefusalWindowClosed(Conflict):
    code = "refusal_window_closed"
    title = "Refusal window closed"


async def refuse_item(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    customer_id: uuid.UUID,
    reason: str | None,
    actor: str,
) -> ItemOut:
    """The customer refuses the new owner: re-place them, excluding that manager (and the
    leaving one). Only within the refusal window after the move; later it is a 409."""
    handover = await require_handover(session, handover_id, lock=True)
    if handover.state != "completed":
        raise Conflict(
            f"Only a completed handover can be refused; this one is {handover.state}.",
            state=handover.state,
        )
    item = await require_item(session, handover_id, customer_id)
    if item.status not in ("moved", "refused") or item.final_manager_id is None:
        raise Conflict(f"Customer {customer_id} was not moved to a manager by this handover.")
    assert item.moved_at is not None  # a moved item has its move time
    now = utc_now()
    window = timedelta(hours=get_settings().handover_refusal_window_hours)
    if now - item.moved_at > window:
        raise RefusalWindowClosed(
            f"The refusal window ({window.total_seconds() / 3600:g} h after the move at "
            f"{item.moved_at.isoformat()}) has closed.",
            moved_at=item.moved_at.isoformat(),
        )
    await assignments.lock_placements(session)
    rows = await execution_repository.lock_executed(
        session, handover_id=handover_id, statuses=("moved", "refused"), customer_id=customer_id
    )
    row = rows[0]
    if row["current_manager_id"] != item.final_manager_id or row["moved_since"]:
        raise Conflict(
            f"Customer {customer_id} changed owner after the handover; refuse is not possible."
        )
    refused = item.final_manager_id
    excluded = frozenset(
        m for m in (handover.from_manager_id, refused, item.refused_manager_id) if m
    )
    plan = await assignments.propose(
        session,
        customer_ids=[customer_id],
        strategy="balanced" if handover.strategy == "successor" else handover.strategy,
        exclude_manager_ids=excluded,
    )
    decision = plan.decision(0)
    target = decision.manager_id if decision.manager_id not in excluded else None
    await move_customers(
        session,
        customer_ids=[customer_id],
        manager_ids=[target],
        reason="refusal",
        actor=actor,
        at=now,
        handover_id=handover_id,
        note=reason,
    )
    await item_repository.update_item(
        session,
        handover_id,
        customer_id,
        {
            "status": "refused",
            "refused_at": now,
            "refused_manager_id": refused,
            "final_manager_id": target,
            "moved_at": now,
            "reasons": list(decision.reasons) if target is None else [],
            "notification_status": None,
            "notification_event_id": None,
            "notification_error": None,
            "notified_at": None,
        },
    )
    if handover.notify_customers and target is not None:
        await notifications.notify_moved(
            session, handover_id=handover_id, customer_ids=[customer_id], at=now
        )
    await outbox.emit(
        session,
        "handover.item.refused",
        {
            "handover_id": handover_id,
            "customer_id": customer_id,
            "refused_manager_id": refused,
            "manager_id": target,
            "reason": reason,
            "actor": actor,
        },
        customer_id=customer_id,
    )
    await repository.add_event(
        session,
        handover_id=handover_id,
        action="refuse",
        from_state="completed",
        to_state="completed",
        actor=actor,
        at=now,
        detail={
            "customer_id": str(customer_id),
            "refused_manager_id": str(refused),
            "new_manager_id": str(target) if target else None,
            "reason": reason,
        },
    )
    return await get_item(session, handover_id=handover_id, customer_id=customer_id)


async def _restore(
    session: AsyncSession,
    *,
    handover: HandoverRow,
    statuses: Sequence[str],
    reason: str,
    status: str,
    actor: str,
    at: datetime,
) -> tuple[int, list[Unrestored]]:
    """Give the executed items' customers back to their owner before the handover, for those
    whose owner has not changed since; the others are reported and left alone. Returns how
    many went back, and the others with why."""
    rows = await execution_repository.lock_executed(
        session, handover_id=handover.id, statuses=statuses
    )
    back_ids: list[uuid.UUID] = []
    back_to: list[uuid.UUID | None] = []
    skipped: list[Unrestored] = []
    for row in rows:
        why = None
        if row["moved_since"] or row["current_manager_id"] != row["final_manager_id"]:
            why = "owner changed after the handover"
        elif row["original_manager_id"] is None:
            why = "had no owner before the handover"
        elif row["original_manager_status"] == "departed":
            why = "the previous owner has departed"
        elif row["customer_status"] != "active":
            why = "customer is no longer active"
        if why is None:
            back_ids.append(row["customer_id"])
            back_to.append(row["original_manager_id"])
        else:
            skipped.append(Unrestored(customer_id=row["customer_id"], reason=why))
    await move_customers(
        session,
        customer_ids=back_ids,
        manager_ids=back_to,
        reason=reason,
        actor=actor,
        at=at,
        handover_id=handover.id,
    )
    # The previous owner may no longer be allowed to hold them (level, rules changed since).
    await compliance.record(
        session, compliance.Scope.customers(back_ids), cause=reason, actor=actor
    )
    await execution_repository.mark_items(
        session,
        handover_id=handover.id,
        customer_ids=back_ids,
        notes=[None] * len(back_ids),
        status=status,
    )
    await execution_repository.mark_items(
        session,
        handover_id=handover.id,
        customer_ids=[s.customer_id for s in skipped],
        notes=[f"not {status}: {s.reason}" for s in skipped],
        status=None,
    )
    return len(back_ids), skipped


async def rollback_handover(
    session: AsyncSession, *, handover_id: uuid.UUID, data: ActionIn, actor: str
) -> RestoreOut:
    """Undo a completed handover: the manager gets back their former status, and customers
    whose owner has not changed since go back to their previous owner (ledger reason
    ``rollback``); the others are reported with the reason."""
    handover = await require_handover(session, handover_id, lock=True)
    next_state(handover.state, "rollback")
    now = utc_now()
    await assignments.lock_placements(session)
    await managers.set_status(
        session,
        manager_id=handover.from_manager_id,
        status=handover.prior_manager_status,
        handover_id=handover.id,
    )
    restored, skipped = await _restore(
        session,
        handover=handover,
        statuses=("moved", "pooled", "refused"),
        reason="rollback",
        status="restored",
        actor=actor,
        at=now,
    )
    await record_transition(
        session,
        handover,
        "rollback",
        actor=actor,
        at=now,
        detail={"restored": restored, "not_restored": len(skipped), "note": data.note},
    )
    return RestoreOut(
        handover=await get_handover(session, handover_id=handover_id),
        restored=restored,
        not_restored=skipped,
    )


async def due_cover_returns(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Completed leave handovers whose ``until`` has passed and whose customers have not gone
    back yet: the worker calls ``return_cover`` for each."""
    return await repository.due_cover_returns(session, now=now)


async def return_cover(session: AsyncSession, *, handover_id: uuid.UUID, actor: str) -> RestoreOut:
    """End a temporary cover: customers go back to their owner (ledger reason
    ``cover_return``), except those the cover moved elsewhere meanwhile, which are reported.
    Idempotent: a cover already returned is reported unchanged."""
    handover = await require_handover(session, handover_id, lock=True)
    if handover.cover_returned_at is not None:
        return RestoreOut(
            handover=await get_handover(session, handover_id=handover_id),
            restored=0,
            not_restored=[],
        )
    if handover.state != "completed" or handover.until is None:
        raise Conflict(
            "Only a completed leave handover with `until` has a cover to return.",
            state=handover.state,
        )
    now = utc_now()
    await assignments.lock_placements(session)
    manager = await require_manager(session, handover.from_manager_id, "from_manager_id")
    if manager.status == "on_leave":
        await managers.set_status(
            session,
            manager_id=handover.from_manager_id,
            status=ManagerStatus.ACTIVE
            if handover.prior_manager_status == "on_leave"
            else ManagerStatus(handover.prior_manager_status),
            handover_id=handover.id,
        )
    returned, skipped = await _restore(
        session,
        handover=handover,
        statuses=("moved", "refused"),
        reason="cover_return",
        status="returned",
        actor=actor,
        at=now,
    )
    await repository.update_handover(session, handover_id, {"cover_returned_at": now})
    await repository.add_event(
        session,
        handover_id=handover_id,
        action="return_cover",
        from_state="completed",
        to_state="completed",
        actor=actor,
        at=now,
        detail={"returned": returned, "not_returned": len(skipped)},
    )
    return RestoreOut(
        handover=await get_handover(session, handover_id=handover_id),
        restored=returned,
        not_restored=skipped,
    )
