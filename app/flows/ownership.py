"""Changes to what an owner may hold, decided explicitly: never a silent violation.

A tier's minimum level, a manager's level, status or skills, and a new rule set can each
make current owners non-compliant. These flows apply the change through its domain's service
and then record, in the same transaction, the violations it introduced (returned to the
caller, listed by ``GET /v1/violations``, announced as ``violation.detected``). A manager set
to ``departed`` while holding active customers is refused unless the caller asks for the
handover to be started in the same transaction (``handover=auto``).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import compliance
from app.core.concurrency import Precondition
from app.errors import Conflict
from app.handovers import planning as handover_planning
from app.handovers.schemas import HandoverCreate
from app.managers import service as managers
from app.managers.schemas import ManagerChangeOut, ManagerUpdate
from app.rules import service as rules
from app.rules.schemas import RuleSetChangeOut
from app.tiers import service as tiers
from app.tiers.schemas import TierChangeOut, TierUpdate
from app.vocabulary import HandoverReason

DepartureHandover = Literal["refuse", "auto"]


class ManagerOwnsCustomers(Conflict):
    code = "manager_owns_customers"
    title = "The manager still owns customers"


def _detected(found: list[compliance.Found]) -> dict[str, Any]:
    return {
        "violations_detected": compliance.summary(found),
        "violations_detected_count": len(found),
    }


async def update_manager(
    session: AsyncSession,
    *,
    manager_id: uuid.UUID,
    data: ManagerUpdate,
    actor: str,
    handover: DepartureHandover = "refuse",
    interim_manager_id: uuid.UUID | None = None,
    precondition: Precondition | None = None,
) -> ManagerChangeOut:
    """Change a manager; record the owners the change made non-compliant.

    ``status: departed`` while the manager owns active customers is a 409 naming the count,
    unless ``handover="auto"``: then a departure handover is drafted and planned in this
    transaction (its customers under ``interim_manager_id`` at once, if given), the manager
    is ``departing`` until it completes, and the response names the handover.
    """
    handover_id: uuid.UUID | None = None
    values = data.model_dump(exclude_unset=True)
    if values.get("status") == "departed":
        current = await managers.get_manager(session, manager_id=manager_id)
        if current.status != "departed" and current.customer_count:
            if handover != "auto":
                raise ManagerOwnsCustomers(
                    f"Manager {manager_id} still owns {current.customer_count} active "
                    "customer(s). Start a handover (POST /v1/handovers with reason "
                    "'departure'), or send handover=auto to draft and plan one now.",
                    customer_count=current.customer_count,
                )
            created = await handover_planning.create_handover(
                session,
                data=HandoverCreate(
                    from_manager_id=manager_id,
                    reason=HandoverReason.DEPARTURE,
                    interim_manager_id=interim_manager_id,
                    interim_now=interim_manager_id is not None,
                    note="Started by setting the manager's status to departed.",
                ),
                actor=actor,
            )
            planned = await handover_planning.plan_handover(
                session, handover_id=created.id, actor=actor
            )
            handover_id = planned.id
            # The manager stays departing (set by the handover) until it completes.
            data = data.model_copy(update={"status": None})
            data.model_fields_set.discard("status")
    manager = await managers.update_manager(
        session, manager_id=manager_id, data=data, precondition=precondition
    )
    found: list[compliance.Found] = []
    if values:
        found = await compliance.record(
            session, compliance.Scope.managers([manager_id]), cause="manager_updated", actor=actor
        )
    return ManagerChangeOut(**manager.model_dump(), handover_id=handover_id, **_detected(found))


async def update_tier(
    session: AsyncSession,
    *,
    code: str,
    data: TierUpdate,
    actor: str,
    precondition: Precondition | None = None,
) -> TierChangeOut:
    """Change a tier; a higher minimum level records the owners now below it."""
    if "min_manager_level" in data.model_fields_set:
        await compliance.hold_moves(session)
    tier = await tiers.update_tier(session, code=code, data=data, precondition=precondition)
    found: list[compliance.Found] = []
    if "min_manager_level" in data.model_fields_set:
        found = await compliance.record(
            session, compliance.Scope.tiers([code]), cause="tier_updated", actor=actor
        )
    return TierChangeOut(**tier.model_dump(), **_detected(found))


async def replace_rules(
    session: AsyncSession, *, payload: dict[str, Any], actor: str, note: str | None
) -> RuleSetChangeOut:
    """Put a new rule set in force and record every owner its hard rules now reject."""
    await compliance.hold_moves(session)
    out = await rules.replace_rules(session, payload=payload, actor=actor, note=note)
    found = await compliance.record(
        session, compliance.Scope.all(), cause="rules_replaced", actor=actor
    )
    return RuleSetChangeOut(**out.model_dump(), **_detected(found))
