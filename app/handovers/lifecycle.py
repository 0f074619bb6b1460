"""Approving, executing, cancelling and rescheduling a handover. Execution moves the portfolio
through the ledger in one transaction; the worker executes a handover due at ``effective_at``
(``due_handover_ids`` + ``execute_handover``, see ``app.handovers.tasks``)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import compliance
from app.assignments import service as assignments
from app.assignments.repository import move_customers
from app.db.models import HANDOVER_OPEN_STATES
from app.errors import Conflict
from app.handovers import execution_repository, item_repository, notifications, repository
from app.handovers.planning import handover_owners
from app.handovers.repository import HandoverRow
from app.handovers.schemas import (
    ActionIn,
    HandoverOut,
)
from app.handovers.states import next_state
from app.handovers.views import (
    get_handover,
    record_transition,
    require_handover,
    require_manager,
    utc_now,
)
from app.jobs.queue import EXECUTE_HANDOVER, enqueue
from app.managers import service as managers
from app.settings import get_settings
from app.vocabulary import HandoverState, ManagerStatus


class BriefingsMissing(Conflict):
    code = "briefings_missing"
    title = "Briefings missing"


class TransferLimitExceeded(Conflict):
    code = "transfer_limit_exceeded"
    title = "Transfer limit exceeded"


async def approve_handover(
    session: AsyncSession, *, handover_id: uuid.UUID, data: ActionIn, actor: str
) -> HandoverOut:
    """Approve the plan. Refused while a top-tier customer has no briefing, or while a
    customer would exceed the transfer limit (unless forced)."""
    handover = await require_handover(session, handover_id, lock=True)
    next_state(handover.state, "approve")
    missing = await item_repository.top_tier_without_briefing(session, handover_id)
    if missing:
        raise BriefingsMissing(
            f"{len(missing)} customer(s) of the top tier have no briefing: "
            + ", ".join(str(c) for c in missing[:5]),
            customer_ids=[str(c) for c in missing[:1000]],
        )
    if not (data.force or handover.force_transfer_limit):
        settings = get_settings()
        over = await item_repository.over_transfer_limit(
            session,
            handover_id=handover_id,
            since=utc_now() - timedelta(days=settings.handover_transfer_window_days),
            limit=settings.handover_max_transfers,
        )
        if over:
            raise TransferLimitExceeded(
                f"{len(over)} customer(s) were already moved by "
                f"{settings.handover_max_transfers} handovers in "
                f"{settings.handover_transfer_window_days} days; override them with force, "
                "or approve with force=true.",
                customers=[{"customer_id": str(c), "transfers": n} for c, n in over[:1000]],
            )
    now = utc_now()
    await record_transition(
        session,
        handover,
        "approve",
        actor=actor,
        at=now,
        detail={"note": data.note, "forced": data.force} if data.note or data.force else None,
    )
    if handover.effective_at is not None and handover.effective_at > now:
        # Announce the execution to the worker in this transaction; the minute sweep over
        # due handovers is the safety net if the job is ever lost.
        await enqueue(
            session,
            EXECUTE_HANDOVER,
            str(handover_id),
            execute_at=handover.effective_at,
            dedupe_key=f"handover:{handover_id}",
        )
    return await get_handover(session, handover_id=handover_id)


async def execute_handover(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    actor: str,
    force: bool = False,
    note: str | None = None,
) -> HandoverOut:
    """Apply every move of an approved handover in this transaction, through the ledger.

    Idempotent: the handover row is locked first, so a concurrent or retried execution waits
    and then finds it completed and returns it unchanged. Being one transaction, a failure
    part-way leaves nothing applied. Customers moved away by someone else since planning are
    skipped, never overwritten. A future ``effective_at`` is refused unless ``force`` (the
    worker runs it when due).
    """
    handover = await require_handover(session, handover_id, lock=True)
    if handover.state == "completed":
        return await get_handover(session, handover_id=handover_id)
    now = utc_now()
    if (
        handover.state == "approved"
        and handover.effective_at is not None
        and handover.effective_at > now
        and not force
    ):
        raise Conflict(
            f"The handover is scheduled for {handover.effective_at.isoformat()}; the worker "
            "runs it then (pass force=true to run it now).",
            effective_at=handover.effective_at.isoformat(),
        )
    await record_transition(session, handover, "execute", actor=actor, at=now)
    await assignments.lock_placements(session)
    ids, targets = await execution_repository.lock_movable(
        session, handover_id=handover_id, owners=handover_owners(handover)
    )
    targets = await _replace_unavailable_targets(session, handover, ids, targets)
    cover = handover.reason == "leave" and handover.until is not None
    await move_customers(
        session,
        customer_ids=ids,
        manager_ids=targets,
        reason="cover" if cover else "handover",
        actor=actor,
        at=now,
        handover_id=handover_id,
        note=note,
    )
    await execution_repository.mark_moved(
        session,
        handover_id=handover_id,
        customer_ids=ids,
        manager_ids=targets,
        at=now,
        notify=handover.notify_customers,
    )
    if handover.notify_customers:
        await notifications.notify_moved(
            session,
            handover_id=handover_id,
            customer_ids=[c for c, t in zip(ids, targets, strict=True) if t is not None],
            at=now,
        )
    skipped = await execution_repository.skip_remaining(
        session, handover_id=handover_id, note="owner changed before execution"
    )
    forced = await item_repository.forced_override_customers(session, handover_id=handover_id)
    if forced:  # overrides forced past hard rules leave violations: recorded, not silent
        await compliance.record(
            session, compliance.Scope.customers(forced), cause="handover", actor=actor
        )
    if handover.reason == "departure":
        await managers.set_status(
            session,
            manager_id=handover.from_manager_id,
            status=ManagerStatus.DEPARTED,
            handover_id=handover_id,
        )
    elif handover.reason == "leave":
        await managers.set_status(
            session,
            manager_id=handover.from_manager_id,
            status=ManagerStatus.ON_LEAVE,
            handover_id=handover_id,
        )
    pooled = sum(t is None for t in targets)
    await record_transition(
        session,
        dataclasses.replace(handover, state=HandoverState.EXECUTING),
        "complete",
        actor=actor,
        at=now,
        values={"completed_at": now},
        detail={"moved": len(ids) - pooled, "pooled": pooled, "skipped": skipped},
    )
    return await get_handover(session, handover_id=handover_id)


async def _replace_unavailable_targets(
    session: AsyncSession,
    handover: HandoverRow,
    ids: list[uuid.UUID],
    targets: list[uuid.UUID | None],
) -> list[uuid.UUID | None]:
    """Planned owners who stopped being active since planning (another handover, a leave)
    never receive customers: those customers are placed again now, excluding them. So are
    the customers whose planned owner a hard rule no longer lets own them (a rule set, a
    tier's minimum level or the manager changed since planning), unless an override forced
    that owner past the rules (its violations are recorded after the moves).

    The planned owners' rows are share-locked, so none of them can start leaving until this
    execution commits (and their own handover then sees the customers they received).
    """
    planned = sorted({t for t in targets if t is not None})
    unavailable = await repository.lock_unavailable_managers(session, planned)
    forced = set(
        await item_repository.forced_override_customers(
            session, handover_id=handover.id, moved=False
        )
    )
    checked = [
        (c, t)
        for c, t in zip(ids, targets, strict=True)
        if t is not None and t not in unavailable and c not in forced
    ]
    forbidden = await compliance.owners_forbidden(
        session, [c for c, _ in checked], [t for _, t in checked]
    )
    if not unavailable and not forbidden:
        return targets
    stale = [c for c, t in zip(ids, targets, strict=True) if t in unavailable or c in forbidden]
    plan = await assignments.propose(
        session,
        customer_ids=stale,
        strategy="balanced",
        exclude_manager_ids=frozenset({handover.from_manager_id, *unavailable}),
        explain="none",
    )
    again = {d.customer_id: d.manager_id for d in plan.iter_decisions()}
    return [again.get(c, t) for c, t in zip(ids, targets, strict=True)]


async def due_handover_ids(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Approved handovers whose ``effective_at`` has come: the worker executes each one in
    its own transaction with ``execute_handover``."""
    return await repository.due_handovers(session, now=now)


async def cancel_handover(
    session: AsyncSession, *, handover_id: uuid.UUID, data: ActionIn, actor: str
) -> HandoverOut:
    """Stop a handover before completion. The manager gets back the status they had; if the
    customers went to an interim owner and the manager has not departed, they go back."""
    handover = await require_handover(session, handover_id, lock=True)
    next_state(handover.state, "cancel")
    now = utc_now()
    manager = await require_manager(session, handover.from_manager_id, "from_manager_id")
    if manager.status == "departing" and handover.prior_manager_status != "departing":
        await managers.set_status(
            session,
            manager_id=handover.from_manager_id,
            status=handover.prior_manager_status,
            handover_id=handover_id,
        )
    returned = 0
    if handover.interim_applied_at is not None and manager.status != "departed":
        assert handover.interim_manager_id is not None  # applied only with an interim manager
        ids = await item_repository.item_customers_owned_by(
            session, handover_id=handover_id, owner_id=handover.interim_manager_id
        )
        returned = await move_customers(
            session,
            customer_ids=ids,
            manager_ids=[handover.from_manager_id] * len(ids),
            reason="rollback",
            actor=actor,
            at=now,
            handover_id=handover_id,
            note="handover cancelled: back from the interim owner",
        )
        await compliance.record(
            session, compliance.Scope.customers(ids), cause="rollback", actor=actor
        )
    await record_transition(
        session,
        handover,
        "cancel",
        actor=actor,
        at=now,
        detail={"note": data.note, "returned_from_interim": returned},
    )
    return await get_handover(session, handover_id=handover_id)


async def reschedule_leave(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    effective_at: datetime | None,
    until: datetime,
) -> HandoverOut:
    """Move a leave handover's start (while not executed) and its end (while the cover has
    not returned): the absence it covers was moved, ended early or extended."""
    handover = await require_handover(session, handover_id, lock=True)
    values: dict[str, object] = {"until": until}
    if handover.state in HANDOVER_OPEN_STATES and effective_at is not None:
        values["effective_at"] = effective_at
    await repository.update_handover(session, handover_id, values)
    return await get_handover(session, handover_id=handover_id)
