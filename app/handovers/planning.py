"""Creating a handover (its scope, the interim owner) and planning it: the engine proposes a
new owner for every customer in scope. Services flush, never commit."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import compliance
from app.assignments import service as assignments
from app.assignments.repository import move_customers
from app.errors import Conflict, InvalidInput
from app.handovers import item_repository, repository
from app.handovers.repository import HandoverRow
from app.handovers.schemas import (
    HandoverCreate,
    HandoverOut,
    HandoverScope,
)
from app.handovers.states import next_state
from app.handovers.views import (
    get_handover,
    record_transition,
    require_handover,
    require_manager,
    unknown_manager,
    utc_now,
)
from app.managers import repository as managers_repository
from app.managers import service as managers
from app.tiers import repository as tiers_repository
from app.vocabulary import ManagerStatus


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
        raise unknown_manager(data.from_manager_id, "from_manager_id")
    open_id = await repository.open_for_manager(session, data.from_manager_id)
    if open_id is not None:
        raise Conflict(
            f"Manager {data.from_manager_id} already has an open handover {open_id}.",
            handover_id=str(open_id),
        )
    if data.successor_id is not None:
        successor = await require_manager(session, data.successor_id, "successor_id")
        if successor.status == "departed":
            raise Conflict(f"Successor {data.successor_id} has departed.")
    interim = None
    if data.interim_manager_id is not None:
        interim = await require_manager(session, data.interim_manager_id, "interim_manager_id")
    scope = data.scope or HandoverScope()
    await _check_scope(session, manager_id=data.from_manager_id, scope=scope)
    now = utc_now()
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
            "prior_manager_status": manager.status,
            "created_by": actor,
            "created_at": now,
            "updated_at": now,
        },
    )
    await item_repository.add_items_in_scope(
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
    if data.reason == "departure" and manager.status in ("active", "on_leave"):
        await managers.set_status(
            session,
            manager_id=data.from_manager_id,
            status=ManagerStatus.DEPARTING,
            handover_id=handover_id,
        )
    if interim is not None and (manager.status == "departed" or data.interim_now):
        if interim.status != "active":
            raise Conflict(
                f"Interim manager {interim.id} is {interim.status} and cannot take over."
            )
        await _place_with_interim(
            session,
            handover_id=handover_id,
            from_manager_id=data.from_manager_id,
            interim_id=interim.id,
            actor=actor,
            at=now,
        )
        await repository.update_handover(session, handover_id, {"interim_applied_at": now})
        # The interim owner is a stop-gap chosen by a person: what it breaks is recorded.
        await compliance.record(
            session, compliance.Scope.managers([interim.id]), cause="interim", actor=actor
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
            await item_repository.customers_in_scope(
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
    ids = await item_repository.item_customers_owned_by(
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


def handover_owners(handover: HandoverRow) -> list[uuid.UUID]:
    """Managers whose customers this handover moves: the leaving one and the interim one."""
    owners = [handover.from_manager_id]
    if handover.interim_applied_at is not None and handover.interim_manager_id is not None:
        owners.append(handover.interim_manager_id)
    return owners


async def plan_handover(
    session: AsyncSession, *, handover_id: uuid.UUID, actor: str, note: str | None = None
) -> HandoverOut:
    """Ask the engine for an owner per customer in scope, excluding the leaving manager.

    Re-planning refreshes the membership (customers moved away drop out, new ones in scope
    join), recomputes proposals and keeps overrides and briefings.
    """
    handover = await require_handover(session, handover_id, lock=True)
    next_state(handover.state, "plan")
    now = utc_now()
    scope = HandoverScope.model_validate(handover.scope or {})
    await item_repository.drop_items_gone(
        session, handover_id=handover_id, owners=handover_owners(handover)
    )
    await item_repository.add_items_in_scope(
        session,
        handover_id=handover_id,
        manager_id=handover.from_manager_id,
        tiers=scope.tiers,
        customer_ids=scope.customer_ids,
    )
    if handover.interim_applied_at is not None:
        assert handover.interim_manager_id is not None  # applied only with an interim manager
        joined = await _place_with_interim(
            session,
            handover_id=handover_id,
            from_manager_id=handover.from_manager_id,
            interim_id=handover.interim_manager_id,
            actor=actor,
            at=now,
        )
        if joined:  # as when the interim owner took over: what it breaks is recorded
            await compliance.record(
                session,
                compliance.Scope.managers([handover.interim_manager_id]),
                cause="interim",
                actor=actor,
            )
    ids = await item_repository.pending_item_customers(session, handover_id)
    excluded = frozenset({handover.from_manager_id})
    metrics: dict[str, Any] | None = None
    if ids:
        plan = await assignments.propose(
            session,
            customer_ids=ids,
            strategy=handover.strategy,
            exclude_manager_ids=excluded,
            successor_id=handover.successor_id,
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
        await item_repository.write_proposals(
            session,
            handover_id=handover_id,
            customer_ids=customers,
            manager_ids=managers,
            scores=scores,
            reasons=reasons,
            explanations=explanations,
        )
        metrics = plan.metrics.to_dict()
    await record_transition(
        session,
        handover,
        "plan",
        actor=actor,
        at=now,
        values={"plan_metrics": metrics},
        detail={"customers": len(ids), **({"note": note} if note else {})},
    )
    return await get_handover(session, handover_id=handover_id)
