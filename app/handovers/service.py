"""Handover use cases: create, plan, override, brief, approve, execute, refuse, roll back,
return cover, and evaluate. Services flush, never commit; every move goes through the ledger.

Worker-facing entry points: ``due_handover_ids`` + ``execute_handover``,
``due_cover_returns`` + ``return_cover``, and ``notifications.settle``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import compliance, guard
from app.assignments import service as assignments
from app.assignments.repository import move_customers
from app.core.pagination import Page, decode_cursor, encode_cursor
from app.db.models import HANDOVER_OPEN_STATES, Handover
from app.errors import Conflict, InvalidInput, NotFound, RuleViolation
from app.events import outbox
from app.events.names import HANDOVER_STATE_EVENTS
from app.handovers import notifications, repository
from app.handovers.schemas import (
    ActionIn,
    AuditEntry,
    Briefing,
    ChecklistOut,
    FeedbackIn,
    FeedbackOut,
    GroupOutcome,
    HandoverCreate,
    HandoverOut,
    HandoverReason,
    HandoverScope,
    HandoverState,
    ItemOut,
    ItemOverride,
    ItemStatus,
    NewOwnerKpis,
    OutcomeOut,
    OverrideOut,
    RestoreOut,
    StratumMatch,
    TaskOut,
    TaskUpdate,
    Unrestored,
)
from app.handovers.states import allowed_actions, next_state
from app.jobs.queue import EXECUTE_HANDOVER, enqueue
from app.managers import repository as managers_repository
from app.reports import service as reports
from app.settings import get_settings
from app.tiers import repository as tiers_repository


class BriefingsMissing(Conflict):
    code = "briefings_missing"
    title = "Briefings missing"


class TransferLimitExceeded(Conflict):
    code = "transfer_limit_exceeded"
    title = "Transfer limit exceeded"


class RefusalWindowClosed(Conflict):
    code = "refusal_window_closed"
    title = "Refusal window closed"


def _now() -> datetime:
    return datetime.now(UTC)


# -- reading -------------------------------------------------------------------------------------
async def _outs(session: AsyncSession, rows: Sequence[RowMapping]) -> list[HandoverOut]:
    """Build public views for several handovers with three batched queries."""
    ids = [r["id"] for r in rows]
    if not ids:
        return []
    counts = await repository.counts_for(session, ids)
    tasks = await repository.tasks_for(session, ids)
    events = await repository.events_for(session, ids)
    outs = []
    for row in rows:
        task_outs = [TaskOut.model_validate(t) for t in tasks.get(row["id"], [])]
        done = sum(t.done for t in task_outs)
        outs.append(
            HandoverOut.model_validate(
                {
                    **row,
                    "scope": row["scope"],
                    "allowed_actions": allowed_actions(row["state"]),
                    "counts": counts[row["id"]],
                    "checklist": ChecklistOut(
                        tasks=task_outs,
                        done=done,
                        total=len(task_outs),
                        progress=round(done / len(task_outs), 4) if task_outs else 0.0,
                    ),
                    "audit": [AuditEntry.model_validate(e) for e in events.get(row["id"], [])],
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
    after = None
    if cursor:
        created, last_id = decode_cursor(cursor, (datetime, uuid.UUID))
        after = (created, last_id)
    rows = await repository.list_page(session, filters=filters, after=after, limit=limit + 1)
    items = await _outs(session, rows[:limit])
    next_cursor = (
        encode_cursor([items[-1].created_at.isoformat(), str(items[-1].id)])
        if len(rows) > limit
        else None
    )
    return Page[HandoverOut](items=items, next_cursor=next_cursor)


def _item_out(row: Mapping[str, Any]) -> ItemOut:
    override = None
    if row["override_manager_id"] is not None:
        override = OverrideOut(
            manager_id=row["override_manager_id"],
            reason=row["override_reason"],
            forced=row["override_forced"],
            by=row["override_by"],
            at=row["override_at"],
        )
    return ItemOut.model_validate(
        {
            **row,
            "score": float(row["score"]) if row["score"] is not None else None,
            "reasons": list(row["reasons"] or []),
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
    await _require(session, handover_id)
    after = decode_cursor(cursor, (uuid.UUID,))[0] if cursor else None
    rows = await repository.list_items(
        session, handover_id=handover_id, statuses=status, after=after, limit=limit + 1
    )
    items = [_item_out(r) for r in rows[:limit]]
    next_cursor = encode_cursor([str(items[-1].customer_id)]) if len(rows) > limit else None
    return Page[ItemOut](items=items, next_cursor=next_cursor)


async def get_item(
    session: AsyncSession, *, handover_id: uuid.UUID, customer_id: uuid.UUID
) -> ItemOut:
    """One item, or NotFound."""
    return _item_out(await _require_item(session, handover_id, customer_id))


async def _require(
    session: AsyncSession, handover_id: uuid.UUID, *, lock: bool = False
) -> RowMapping:
    row = await repository.get(session, handover_id, lock=lock)
    if row is None:
        raise NotFound(f"Handover {handover_id} does not exist.")
    return row


async def _require_item(
    session: AsyncSession, handover_id: uuid.UUID, customer_id: uuid.UUID
) -> RowMapping:
    item = await repository.get_item(session, handover_id, customer_id)
    if item is None:
        raise NotFound(f"Customer {customer_id} is not part of handover {handover_id}.")
    return item


async def _transition(
    session: AsyncSession,
    handover: Mapping[str, Any],
    action: str,
    *,
    actor: str,
    at: datetime,
    values: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> str:
    """Move the handover to the state ``action`` leads to, with an audit entry."""
    target = next_state(handover["state"], action)
    await repository.update_handover(session, handover["id"], {**(values or {}), "state": target})
    await repository.add_event(
        session,
        handover_id=handover["id"],
        action=action,
        from_state=handover["state"],
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
                "handover_id": handover["id"],
                "from_manager_id": handover["from_manager_id"],
                "reason": handover["reason"],
                "state": target,
                "previous_state": handover["state"],
                "actor": actor,
                "detail": detail,
            },
        )
    return target


# -- create --------------------------------------------------------------------------------------
def _unknown_manager(manager_id: uuid.UUID, field: str) -> InvalidInput:
    return InvalidInput(
        f"Manager {manager_id} does not exist.",
        errors=[{"loc": ["body", field], "msg": "unknown manager"}],
    )


async def _manager(session: AsyncSession, manager_id: uuid.UUID, field: str) -> RowMapping:
    row = await managers_repository.get(session, manager_id)
    if row is None:
        raise _unknown_manager(manager_id, field)
    return row


async def create_handover(
    session: AsyncSession, *, data: HandoverCreate, actor: str
) -> HandoverOut:
    """Open a handover for a manager's customers (all, or the scope given).

    A departure marks the manager ``departing`` so nobody assigns them new customers. When
    the manager has already departed (or ``interim_now``), the customers go to the interim
    manager at once (ledger reason ``interim``) and wait there for execution.
    """
    manager = await managers_repository.lock(session, data.from_manager_id)
    if manager is None:
        raise _unknown_manager(data.from_manager_id, "from_manager_id")
    open_id = await repository.open_for_manager(session, data.from_manager_id)
    if open_id is not None:
        raise Conflict(
            f"Manager {data.from_manager_id} already has an open handover {open_id}.",
            handover_id=str(open_id),
        )
    if data.successor_id is not None:
        successor = await _manager(session, data.successor_id, "successor_id")
        if successor["status"] == "departed":
            raise Conflict(f"Successor {data.successor_id} has departed.")
    interim = None
    if data.interim_manager_id is not None:
        interim = await _manager(session, data.interim_manager_id, "interim_manager_id")
    scope = data.scope or HandoverScope()
    await _check_scope(session, manager_id=data.from_manager_id, scope=scope)
    now = _now()
    handover_id = await repository.insert_handover(
        session,
        {
            "from_manager_id": data.from_manager_id,
            "reason": data.reason,
            "strategy": data.strategy,
            "successor_id": data.successor_id,
            "interim_manager_id": data.interim_manager_id,
            "effective_at": data.effective_at,
            "until": data.until,
            "notify_customers": data.notify_customers,
            "force_transfer_limit": data.force_transfer_limit,
            "scope": scope.model_dump(mode="json") if data.scope is not None else None,
            "note": data.note,
            "prior_manager_status": manager["status"],
            "created_by": actor,
            "created_at": now,
            "updated_at": now,
        },
    )
    await repository.add_items_in_scope(
        session,
        handover_id=handover_id,
        manager_id=data.from_manager_id,
        tiers=scope.tiers,
        customer_ids=scope.customer_ids,
    )
    await repository.add_event(
        session,
        handover_id=handover_id,
        action="create",
        from_state=None,
        to_state="draft",
        actor=actor,
        at=now,
    )
    if data.reason == "departure" and manager["status"] in ("active", "on_leave"):
        await repository.set_manager_status(session, data.from_manager_id, "departing")
    if interim is not None and (manager["status"] == "departed" or data.interim_now):
        if interim["status"] != "active":
            raise Conflict(
                f"Interim manager {interim['id']} is {interim['status']} and cannot take over."
            )
        await _place_with_interim(
            session,
            handover_id=handover_id,
            from_manager_id=data.from_manager_id,
            interim_id=interim["id"],
            actor=actor,
            at=now,
        )
        await repository.update_handover(session, handover_id, {"interim_applied_at": now})
        # The interim owner is a stop-gap chosen by a person: what it breaks is recorded.
        await compliance.record(
            session, compliance.Scope.managers([interim["id"]]), cause="interim", actor=actor
        )
    return await get_handover(session, handover_id=handover_id)


async def _check_scope(
    session: AsyncSession, *, manager_id: uuid.UUID, scope: HandoverScope
) -> None:
    """Unknown tiers and listed customers the manager does not own are a 422."""
    if scope.tiers:
        known = {t["code"] for t in await tiers_repository.list_all(session)}
        unknown = sorted(set(scope.tiers) - known)
        if unknown:
            raise InvalidInput(
                f"Unknown tier(s): {', '.join(unknown)}.",
                errors=[{"loc": ["body", "scope", "tiers"], "msg": "unknown tier"}],
            )
    if scope.customer_ids:
        owned = set(
            await repository.customers_in_scope(
                session, manager_id=manager_id, tiers=(), customer_ids=scope.customer_ids
            )
        )
        foreign = [str(c) for c in dict.fromkeys(scope.customer_ids) if c not in owned]
        if foreign:
            raise InvalidInput(
                f"{len(foreign)} listed customer(s) are not active customers of the manager: "
                + ", ".join(foreign[:5]),
                customer_ids=foreign[:100],
            )


async def _place_with_interim(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    from_manager_id: uuid.UUID,
    interim_id: uuid.UUID,
    actor: str,
    at: datetime,
) -> int:
    """Give the interim manager the customers still with the leaving manager."""
    ids = await repository.item_customers_owned_by(
        session, handover_id=handover_id, owner_id=from_manager_id
    )
    return await move_customers(
        session,
        customer_ids=ids,
        manager_ids=[interim_id] * len(ids),
        reason="interim",
        actor=actor,
        at=at,
        handover_id=handover_id,
        note="interim owner until the handover is executed",
    )


def _owners(handover: Mapping[str, Any]) -> list[uuid.UUID]:
    """Managers whose customers this handover moves: the leaving one and the interim one."""
    owners = [handover["from_manager_id"]]
    if handover["interim_applied_at"] is not None and handover["interim_manager_id"] is not None:
        owners.append(handover["interim_manager_id"])
    return owners


# -- plan ----------------------------------------------------------------------------------------
async def plan_handover(
    session: AsyncSession, *, handover_id: uuid.UUID, actor: str, note: str | None = None
) -> HandoverOut:
    """Ask the engine for an owner per customer in scope, excluding the leaving manager.

    Re-planning refreshes the membership (customers moved away drop out, new ones in scope
    join), recomputes proposals and keeps overrides and briefings.
    """
    handover = await _require(session, handover_id, lock=True)
    next_state(handover["state"], "plan")
    now = _now()
    scope = HandoverScope.model_validate(handover["scope"] or {})
    await repository.drop_items_gone(session, handover_id=handover_id, owners=_owners(handover))
    await repository.add_items_in_scope(
        session,
        handover_id=handover_id,
        manager_id=handover["from_manager_id"],
        tiers=scope.tiers,
        customer_ids=scope.customer_ids,
    )
    if handover["interim_applied_at"] is not None:
        await _place_with_interim(
            session,
            handover_id=handover_id,
            from_manager_id=handover["from_manager_id"],
            interim_id=handover["interim_manager_id"],
            actor=actor,
            at=now,
        )
    ids = await repository.pending_item_customers(session, handover_id)
    excluded = frozenset({handover["from_manager_id"]})
    metrics: dict[str, Any] | None = None
    if ids:
        plan = await assignments.propose(
            session,
            customer_ids=ids,
            strategy=handover["strategy"],
            exclude_manager_ids=excluded,
            successor_id=handover["successor_id"],
            explain="basic",
        )
        customers, managers, scores, reasons, explanations = [], [], [], [], []
        for d in plan.iter_decisions():
            target = d.manager_id if d.manager_id not in excluded else None
            why = d.reasons if target is not None else (d.reasons or ("no_eligible_manager",))
            customers.append(d.customer_id)
            managers.append(target)
            scores.append(float(d.score))
            reasons.append(json.dumps(list(why)))
            explanations.append(json.dumps(d.explanation) if d.explanation else None)
        await repository.write_proposals(
            session,
            handover_id=handover_id,
            customer_ids=customers,
            manager_ids=managers,
            scores=scores,
            reasons=reasons,
            explanations=explanations,
        )
        metrics = plan.metrics.to_dict()
    await _transition(
        session,
        handover,
        "plan",
        actor=actor,
        at=now,
        values={"plan_metrics": metrics},
        detail={"customers": len(ids), **({"note": note} if note else {})},
    )
    return await get_handover(session, handover_id=handover_id)


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
    handover = await _require(session, handover_id, lock=True)
    if handover["state"] not in ("draft", "planned"):
        raise Conflict(
            f"Items can be overridden only before approval; the handover is {handover['state']}.",
            state=handover["state"],
        )
    item = await _require_item(session, handover_id, customer_id)
    if item["status"] not in repository.PENDING_ITEM_STATUSES:
        raise Conflict(f"Item {customer_id} is {item['status']} and cannot be overridden.")
    if data.manager_id is None:
        values: dict[str, Any] = {
            "override_manager_id": None,
            "override_reason": None,
            "override_forced": False,
            "override_by": None,
            "override_at": None,
            "status": (
                "pending"
                if handover["state"] == "draft"
                else "proposed"
                if item["proposed_manager_id"] is not None
                else "unplaced"
            ),
        }
    else:
        if data.manager_id == handover["from_manager_id"]:
            raise RuleViolation(
                "The leaving manager cannot keep a customer of their handover.",
                violations=[{"rule": "leaving_manager", "message": "the manager is leaving"}],
            )
        await _manager(session, data.manager_id, "manager_id")
        violations = await guard.check_move(
            session,
            customer_id=customer_id,
            manager_id=data.manager_id,
            force=data.force,
            exclude_manager_ids=frozenset({handover["from_manager_id"]}),
        )
        values = {
            "override_manager_id": data.manager_id,
            "override_reason": data.reason,
            "override_forced": bool(violations) and data.force,
            "override_by": actor,
            "override_at": _now(),
            "status": "overridden",
        }
    await repository.update_item(session, handover_id, customer_id, values)
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
    handover = await _require(session, handover_id)
    if handover["state"] in ("cancelled", "rolled_back"):
        raise Conflict(f"The handover is {handover['state']}.", state=handover["state"])
    await _require_item(session, handover_id, customer_id)
    await repository.update_item(
        session,
        handover_id,
        customer_id,
        {"briefing": data.model_dump(mode="json"), "briefing_by": actor, "briefing_at": _now()},
    )
    return await get_item(session, handover_id=handover_id, customer_id=customer_id)


async def update_task(
    session: AsyncSession, *, handover_id: uuid.UUID, task: str, data: TaskUpdate, actor: str
) -> HandoverOut:
    """Tick (or untick) a checklist task, recording who and when."""
    await _require(session, handover_id)
    await repository.set_task(
        session,
        handover_id=handover_id,
        task=task,
        done=data.done,
        actor=actor,
        at=_now(),
        note=data.note,
    )
    return await get_handover(session, handover_id=handover_id)


# -- approve -------------------------------------------------------------------------------------
async def approve_handover(
    session: AsyncSession, *, handover_id: uuid.UUID, data: ActionIn, actor: str
) -> HandoverOut:
    """Approve the plan. Refused while a top-tier customer has no briefing, or while a
    customer would exceed the transfer limit (unless forced)."""
    handover = await _require(session, handover_id, lock=True)
    next_state(handover["state"], "approve")
    missing = await repository.top_tier_without_briefing(session, handover_id)
    if missing:
        raise BriefingsMissing(
            f"{len(missing)} customer(s) of the top tier have no briefing: "
            + ", ".join(str(c) for c in missing[:5]),
            customer_ids=[str(c) for c in missing[:1000]],
        )
    if not (data.force or handover["force_transfer_limit"]):
        settings = get_settings()
        over = await repository.over_transfer_limit(
            session,
            handover_id=handover_id,
            since=_now() - timedelta(days=settings.handover_transfer_window_days),
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
    now = _now()
    await _transition(
        session,
        handover,
        "approve",
        actor=actor,
        at=now,
        detail={"note": data.note, "forced": data.force} if data.note or data.force else None,
    )
    if handover["effective_at"] is not None and handover["effective_at"] > now:
        # Announce the execution to the worker in this transaction; the minute sweep over
        # due handovers is the safety net if the job is ever lost.
        await enqueue(
            session,
            EXECUTE_HANDOVER,
            str(handover_id),
            execute_after=handover["effective_at"] - now,
            dedupe_key=f"handover:{handover_id}",
        )
    return await get_handover(session, handover_id=handover_id)


# -- execute -------------------------------------------------------------------------------------
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
    handover = await _require(session, handover_id, lock=True)
    if handover["state"] == "completed":
        return await get_handover(session, handover_id=handover_id)
    now = _now()
    if (
        handover["state"] == "approved"
        and handover["effective_at"] is not None
        and handover["effective_at"] > now
        and not force
    ):
        raise Conflict(
            f"The handover is scheduled for {handover['effective_at'].isoformat()}; the worker "
            "runs it then (pass force=true to run it now).",
            effective_at=handover["effective_at"].isoformat(),
        )
    await _transition(session, handover, "execute", actor=actor, at=now)
    await assignments.lock_placements(session)
    ids, targets = await repository.lock_movable(
        session, handover_id=handover_id, owners=_owners(handover)
    )
    targets = await _replace_unavailable_targets(session, handover, ids, targets)
    cover = handover["reason"] == "leave" and handover["until"] is not None
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
    await repository.mark_moved(
        session,
        handover_id=handover_id,
        customer_ids=ids,
        manager_ids=targets,
        at=now,
        notify=handover["notify_customers"],
    )
    if handover["notify_customers"]:
        await notifications.notify_moved(
            session,
            handover_id=handover_id,
            customer_ids=[c for c, t in zip(ids, targets, strict=True) if t is not None],
            at=now,
        )
    skipped = await repository.skip_remaining(
        session, handover_id=handover_id, note="owner changed before execution"
    )
    forced = await repository.forced_override_customers(session, handover_id=handover_id)
    if forced:  # overrides forced past hard rules leave violations: recorded, not silent
        await compliance.record(
            session, compliance.Scope.customers(forced), cause="handover", actor=actor
        )
    if handover["reason"] == "departure":
        await repository.set_manager_status(session, handover["from_manager_id"], "departed")
    elif handover["reason"] == "leave":
        await repository.set_manager_status(session, handover["from_manager_id"], "on_leave")
    pooled = sum(t is None for t in targets)
    await _transition(
        session,
        {**handover, "state": "executing"},
        "complete",
        actor=actor,
        at=now,
        values={"completed_at": now},
        detail={"moved": len(ids) - pooled, "pooled": pooled, "skipped": skipped},
    )
    return await get_handover(session, handover_id=handover_id)


async def _replace_unavailable_targets(
    session: AsyncSession,
    handover: Mapping[str, Any],
    ids: list[uuid.UUID],
    targets: list[uuid.UUID | None],
) -> list[uuid.UUID | None]:
    """Planned owners who stopped being active since planning (another handover, a leave)
    never receive customers: those customers are placed again now, excluding them.

    The planned owners' rows are share-locked, so none of them can start leaving until this
    execution commits (and their own handover then sees the customers they received).
    """
    planned = sorted({t for t in targets if t is not None})
    unavailable = await repository.lock_unavailable_managers(session, planned)
    if not unavailable:
        return targets
    stale = [c for c, t in zip(ids, targets, strict=True) if t in unavailable]
    plan = await assignments.propose(
        session,
        customer_ids=stale,
        strategy="balanced",
        exclude_manager_ids=frozenset({handover["from_manager_id"], *unavailable}),
        explain="none",
    )
    again = {d.customer_id: d.manager_id for d in plan.iter_decisions()}
    return [again[c] if t in unavailable else t for c, t in zip(ids, targets, strict=True)]


async def due_handover_ids(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Approved handovers whose ``effective_at`` has come: the worker executes each one in
    its own transaction with ``execute_handover``."""
    return await repository.due_handovers(session, now=now)


# -- cancel --------------------------------------------------------------------------------------
async def cancel_handover(
    session: AsyncSession, *, handover_id: uuid.UUID, data: ActionIn, actor: str
) -> HandoverOut:
    """Stop a handover before completion. The manager gets back the status they had; if the
    customers went to an interim owner and the manager has not departed, they go back."""
    handover = await _require(session, handover_id, lock=True)
    next_state(handover["state"], "cancel")
    now = _now()
    manager = await _manager(session, handover["from_manager_id"], "from_manager_id")
    if manager["status"] == "departing" and handover["prior_manager_status"] != "departing":
        await repository.set_manager_status(
            session, handover["from_manager_id"], handover["prior_manager_status"]
        )
    returned = 0
    if handover["interim_applied_at"] is not None and manager["status"] != "departed":
        ids = await repository.item_customers_owned_by(
            session, handover_id=handover_id, owner_id=handover["interim_manager_id"]
        )
        returned = await move_customers(
            session,
            customer_ids=ids,
            manager_ids=[handover["from_manager_id"]] * len(ids),
            reason="rollback",
            actor=actor,
            at=now,
            handover_id=handover_id,
            note="handover cancelled: back from the interim owner",
        )
        await compliance.record(
            session, compliance.Scope.customers(ids), cause="rollback", actor=actor
        )
    await _transition(
        session,
        handover,
        "cancel",
        actor=actor,
        at=now,
        detail={"note": data.note, "returned_from_interim": returned},
    )
    return await get_handover(session, handover_id=handover_id)


# -- after execution: refusal, rollback, cover return ---------------------------------------------
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
    handover = await _require(session, handover_id, lock=True)
    if handover["state"] != "completed":
        raise Conflict(
            f"Only a completed handover can be refused; this one is {handover['state']}.",
            state=handover["state"],
        )
    item = await _require_item(session, handover_id, customer_id)
    if item["status"] not in ("moved", "refused") or item["final_manager_id"] is None:
        raise Conflict(f"Customer {customer_id} was not moved to a manager by this handover.")
    now = _now()
    window = timedelta(hours=get_settings().handover_refusal_window_hours)
    if now - item["moved_at"] > window:
        raise RefusalWindowClosed(
            f"The refusal window ({window.total_seconds() / 3600:g} h after the move at "
            f"{item['moved_at'].isoformat()}) has closed.",
            moved_at=item["moved_at"].isoformat(),
        )
    await assignments.lock_placements(session)
    rows = await repository.lock_executed(
        session, handover_id=handover_id, statuses=("moved", "refused"), customer_id=customer_id
    )
    row = rows[0]
    if row["current_manager_id"] != item["final_manager_id"] or row["moved_since"]:
        raise Conflict(
            f"Customer {customer_id} changed owner after the handover; refuse is not possible."
        )
    refused = item["final_manager_id"]
    excluded = frozenset(
        m for m in (handover["from_manager_id"], refused, item["refused_manager_id"]) if m
    )
    plan = await assignments.propose(
        session,
        customer_ids=[customer_id],
        strategy="balanced" if handover["strategy"] == "successor" else handover["strategy"],
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
    await repository.update_item(
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
    if handover["notify_customers"] and target is not None:
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
    handover: Mapping[str, Any],
    statuses: Sequence[str],
    reason: str,
    status: str,
    actor: str,
    at: datetime,
) -> tuple[int, list[Unrestored]]:
    """Give the executed items' customers back to their owner before the handover, for those
    whose owner has not changed since; the others are reported and left alone. Returns how
    many went back, and the others with why."""
    rows = await repository.lock_executed(session, handover_id=handover["id"], statuses=statuses)
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
        handover_id=handover["id"],
    )
    # The previous owner may no longer be allowed to hold them (level, rules changed since).
    await compliance.record(
        session, compliance.Scope.customers(back_ids), cause=reason, actor=actor
    )
    await repository.mark_items(
        session,
        handover_id=handover["id"],
        customer_ids=back_ids,
        notes=[None] * len(back_ids),
        status=status,
    )
    await repository.mark_items(
        session,
        handover_id=handover["id"],
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
    handover = await _require(session, handover_id, lock=True)
    next_state(handover["state"], "rollback")
    now = _now()
    await assignments.lock_placements(session)
    await repository.set_manager_status(
        session, handover["from_manager_id"], handover["prior_manager_status"]
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
    await _transition(
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
    handover = await _require(session, handover_id, lock=True)
    if handover["cover_returned_at"] is not None:
        return RestoreOut(
            handover=await get_handover(session, handover_id=handover_id),
            restored=0,
            not_restored=[],
        )
    if handover["state"] != "completed" or handover["until"] is None:
        raise Conflict(
            "Only a completed leave handover with `until` has a cover to return.",
            state=handover["state"],
        )
    now = _now()
    await assignments.lock_placements(session)
    manager = await _manager(session, handover["from_manager_id"], "from_manager_id")
    if manager["status"] == "on_leave":
        await repository.set_manager_status(
            session,
            handover["from_manager_id"],
            "active"
            if handover["prior_manager_status"] == "on_leave"
            else handover["prior_manager_status"],
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


# -- outcome -------------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def _group(row: Mapping[str, Any] | None) -> GroupOutcome:
    if row is None:
        return GroupOutcome(
            customers=0,
            retained=0,
            churned=0,
            retention_rate=None,
            satisfaction_before=None,
            satisfaction_latest=None,
            satisfaction_change=None,
        )
    customers = int(row["customers"])
    return GroupOutcome(
        customers=customers,
        retained=int(row["retained"]),
        churned=int(row["churned"]),
        retention_rate=round(row["retained"] / customers, 4) if customers else None,
        satisfaction_before=_num(row["satisfaction_before"]),
        satisfaction_latest=_num(row["satisfaction_latest"]),
        satisfaction_change=_num(row["satisfaction_change"]),
    )


def _stratum(row: Mapping[str, Any]) -> StratumMatch:
    control = int(row["control"])
    return StratumMatch(
        tier=row["tier"],
        region=row["region"],
        moved=int(row["moved"]),
        matched_on="none" if not control else "tier_region" if row["by_region"] else "tier",
        control=control,
        control_retention_rate=round(row["control_retained"] / control, 4) if control else None,
    )


def _matched_rate(strata: Sequence[StratumMatch]) -> float | None:
    """The control's retention standardised to the moved customers' mix of strata."""
    weighted = [(s.moved, s.control_retention_rate) for s in strata if s.control]
    total = sum(moved for moved, _ in weighted)
    if not total:
        return None
    return round(sum(moved * (rate or 0.0) for moved, rate in weighted) / total, 4)


async def handover_outcome(
    session: AsyncSession, *, handover_id: uuid.UUID, window_days: int = 90
) -> OutcomeOut:
    """The moved customers over ``window_days`` after execution (or until now) against a
    control group matched on tier and region (seed 000 §6): retention and churn inside the
    window, satisfaction before vs latest, refusals, time to complete, the team's feedback."""
    handover = await _require(session, handover_id)
    now = _now()
    completed = handover["completed_at"]
    pivot = completed or handover["created_at"]
    until = min(now, pivot + timedelta(days=window_days)) if completed else pivot
    groups = await repository.outcome_groups(
        session, handover_id=handover_id, pivot=pivot, until=until
    )
    strata = [
        _stratum(r)
        for r in await repository.outcome_strata(
            session, handover_id=handover_id, pivot=pivot, until=until
        )
    ]
    feedback = [
        FeedbackOut.model_validate(r) for r in await repository.list_feedback(session, handover_id)
    ]
    scores = [float(f.score) for f in feedback if f.score is not None]
    return OutcomeOut(
        new_owners=await _new_owners(session, handover_id=handover_id, pivot=pivot, until=until),
        handover_id=handover_id,
        state=handover["state"],
        period_start=pivot,
        period_end=until,
        window_days=window_days,
        moved=_group(groups.get("moved")),
        control=_group(groups.get("control")),
        control_retention_rate_matched=_matched_rate(strata),
        matching=strata,
        refusals=await repository.refusal_count(session, handover_id),
        hours_to_complete=(
            round((completed - handover["created_at"]).total_seconds() / 3600, 4)
            if completed
            else None
        ),
        feedback=feedback,
        feedback_score=round(sum(scores) / len(scores), 4) if scores else None,
    )


async def _new_owners(
    session: AsyncSession, *, handover_id: uuid.UUID, pivot: datetime, until: datetime
) -> list[NewOwnerKpis]:
    """The new owners' KPIs over ``(pivot, until]`` and over as long before the pivot."""
    if until <= pivot:
        return []
    received = await repository.received_counts(session, handover_id)
    ids = sorted(received)
    window = await reports.kpis_of_managers(session, manager_ids=ids, from_=pivot, to=until)
    previous = await reports.kpis_of_managers(
        session, manager_ids=ids, from_=pivot - (until - pivot), to=pivot
    )
    return [
        NewOwnerKpis(
            manager_id=manager_id,
            name=window[manager_id].name,
            customers_received=received[manager_id],
            window=window[manager_id],
            previous=previous[manager_id],
        )
        for manager_id in ids
        if manager_id in window and manager_id in previous
    ]


async def add_feedback(
    session: AsyncSession, *, handover_id: uuid.UUID, data: FeedbackIn, actor: str
) -> FeedbackOut:
    """Record a team member's feedback on a handover (a score, a note, or both)."""
    await _require(session, handover_id)
    if data.score is None and data.note is None:
        raise InvalidInput(
            "Give a score, a note, or both.",
            errors=[{"loc": ["body"], "msg": "score or note is required"}],
        )
    row = await repository.add_feedback(
        session, handover_id=handover_id, score=data.score, note=data.note, actor=actor
    )
    return FeedbackOut.model_validate(row)


async def reschedule_leave(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    effective_at: datetime | None,
    until: datetime,
) -> HandoverOut:
    """Move a leave handover's start (while not executed) and its end (while the cover has
    not returned): the absence it covers was moved, ended early or extended."""
    handover = await _require(session, handover_id, lock=True)
    values: dict[str, object] = {"until": until}
    if handover["state"] in HANDOVER_OPEN_STATES and effective_at is not None:
        values["effective_at"] = effective_at
    await repository.update_handover(session, handover_id, values)
    return await get_handover(session, handover_id=handover_id)
