"""Process stored inbound events: each in its own transaction, exactly once per inbox row.

The inbox row is locked while its event is handled, and its status is written in the same
transaction as the changes the event caused, so a crash leaves it ``received`` (the sweep
picks it up again) and never half-applied. A domain refusal (unknown customer, invalid
field, illegal transition) marks it ``failed`` with the reason; it can be retried.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from app.absences import service as absences
from app.absences.schemas import AbsenceCreate, AbsenceUpdate
from app.activities.schemas import ActivityCreate
from app.activities.service import record_activity
from app.assignments import compliance
from app.assignments import service as assignments
from app.assignments.schemas import AssignRequest
from app.customers import service as customers
from app.customers.schemas import CustomerCreate, CustomerUpdate
from app.db.models import Customer, Manager
from app.db.session import SessionFactory, session_scope
from app.errors import BatonError
from app.events import outbox
from app.flows import ownership
from app.flows.availability import cancel_absence, create_absence, update_absence
from app.handovers import aftercare as handover_aftercare
from app.handovers import lifecycle as handover_lifecycle
from app.handovers import planning as handover_planning
from app.handovers import repository as handover_repository
from app.handovers.schemas import ActionIn, HandoverCreate
from app.managers import service as managers
from app.managers.schemas import ManagerCreate, ManagerUpdate
from app.revenue.schemas import RevenueIn
from app.revenue.service import record_revenue
from app.satisfaction.schemas import SatisfactionIn
from app.satisfaction.service import record_satisfaction
from app.vocabulary import CustomerStatus, HandoverReason
from app.webhooks.inbound import adapters, repository
from app.webhooks.inbound.repository import LockedEvent
from app.webhooks.inbound.service import result_json

log = logging.getLogger("baton.webhooks")


class Ignored(Exception):
    """The event is understood but there is nothing to do (with the reason)."""


class Failed(Exception):
    """The event cannot be applied (with the reason)."""


Handler = Callable[[AsyncSession, LockedEvent, dict[str, Any], str], Awaitable[dict[str, Any]]]


def _ref(data: Mapping[Any, Any]) -> tuple[uuid.UUID | None, str | None]:
    if data.get("id"):
        try:
            return uuid.UUID(str(data["id"])), None
        except ValueError as exc:
            raise Failed(f"`id` {data['id']!r} is not a UUID.") from exc
    if data.get("external_ref"):
        return None, str(data["external_ref"])
    raise Failed("`data` must name the record by `external_ref` or `id`.")


async def _find(
    session: AsyncSession, model: type[Manager] | type[Customer], data: Mapping[Any, Any]
) -> RowMapping | None:
    record_id, external_ref = _ref(data)
    return await repository.find_record(session, model, id=record_id, external_ref=external_ref)


def _fields(data: Mapping[Any, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("id",)}


async def _manager_upserted(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    found = await _find(session, Manager, data)
    if found is None:
        out = await managers.create_manager(session, data=ManagerCreate(**_fields(data)))
        return {"manager_id": out.id, "created": True}
    fields = {k: v for k, v in _fields(data).items() if k != "status"}
    # Through the flow a PATCH takes: owners the change makes non-compliant are recorded.
    changed = await ownership.update_manager(
        session, manager_id=found["id"], data=ManagerUpdate(**fields), actor=actor
    )
    return {
        "manager_id": found["id"],
        "created": False,
        "violations_detected": changed.violations_detected_count,
    }


async def _manager_deactivated(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    manager = await _find(session, Manager, data)
    if manager is None:
        raise Failed("No such manager.")
    if manager["status"] == "departed":
        raise Ignored("the manager has already departed")
    open_id = await handover_repository.open_for_manager(session, manager["id"])
    if open_id is not None:
        raise Ignored(f"the manager already has an open handover {open_id}")
    created = await handover_planning.create_handover(
        session,
        data=HandoverCreate(
            from_manager_id=manager["id"],
            reason=HandoverReason.DEPARTURE,
            strategy=source.default_strategy,
            note=f"Deactivated in {source.name}.",
        ),
        actor=actor,
    )
    planned = await handover_planning.plan_handover(session, handover_id=created.id, actor=actor)
    result: dict[str, Any] = {"handover_id": planned.id, "state": planned.state}
    if source.auto_approve:
        try:
            async with session.begin_nested():
                approved = await handover_lifecycle.approve_handover(
                    session, handover_id=planned.id, data=ActionIn(), actor=actor
                )
            result["state"] = approved.state
        except BatonError as exc:  # e.g. briefings missing: stays planned for a person
            result["approval_refused"] = exc.detail
    return result


async def _customer_upserted(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    found = await _find(session, Customer, data)
    fields = {k: v for k, v in _fields(data).items() if k not in ("manager_id", "owner_ref")}
    if data.get("owner_ref"):
        # the CRM names the owner: a manual assignment through the customers service, which
        # refuses a manager the placement rules do not allow
        owner = await _find(session, Manager, {"external_ref": data["owner_ref"]})
        if owner is None:
            raise Failed(f"No manager has external_ref {data['owner_ref']!r}.")
        fields["manager_id"] = owner["id"]
    if found is None:
        if "name" not in fields or "tier" not in fields:
            raise Ignored("an unknown customer needs `name` and `tier` to be created")
        out = await customers.create_customer(
            session, data=CustomerCreate(**fields), force=False, actor=actor
        )
        customer_id, created = out.id, True
    else:
        out = await customers.update_customer(
            session,
            customer_id=found["id"],
            data=CustomerUpdate(**fields),
            force=False,
            actor=actor,
        )
        customer_id, created = found["id"], False
    result: dict[str, Any] = {"customer_id": customer_id, "created": created}
    if out.manager_id is None and out.status == "active":
        placed = await assignments.assign_customer(
            session, customer_id=customer_id, request=AssignRequest(), actor=actor
        )
        result["manager_id"] = placed.decision.manager_id
    return result


async def _customer_tier_changed(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    found = await _find(session, Customer, data)
    if found is None:
        raise Failed("No such customer.")
    if not data.get("tier"):
        raise Failed("`data.tier` is required.")
    await customers.update_customer(
        session,
        customer_id=found["id"],
        data=CustomerUpdate(tier=data["tier"]),
        force=False,
        actor=actor,
    )
    result: dict[str, Any] = {"customer_id": found["id"], "tier": data["tier"]}
    if found["manager_id"] is None:
        return result
    # The placement guard decides (every hard rule, the rule set's too); the update above
    # recorded any violation.
    _, breaking = await compliance.find(session, compliance.Scope.customers([found["id"]]))
    if not breaking:
        result["owner_eligible"] = True
        return result
    result["owner_eligible"] = False
    result["violated_rules"] = [v.rule for v in breaking[0].rules]
    apply = source.tier_change_action == "apply"
    placed = await assignments.assign_customer(
        session, customer_id=found["id"], request=AssignRequest(dry_run=not apply), actor=actor
    )
    result["proposed_manager_id"] = placed.decision.manager_id
    result["applied"] = placed.applied
    return result


async def _customer_churned(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    found = await _find(session, Customer, data)
    if found is None:
        raise Ignored("unknown customer")
    if found["status"] == "churned":
        raise Ignored("already churned")
    await customers.update_customer(
        session,
        customer_id=found["id"],
        data=CustomerUpdate(status=CustomerStatus.CHURNED),
        force=False,
        actor=actor,
    )
    return {"customer_id": found["id"], "status": "churned"}


async def _satisfaction_recorded(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    found = await _find(session, Customer, data)
    if found is None:
        raise Failed("No such customer.")
    try:
        score = Decimal(str(data.get("score")))
    except InvalidOperation as exc:
        raise Failed("`data.score` must be a number from 0 to 10.") from exc
    measured = SatisfactionIn(
        score=score,
        recorded_at=data.get("recorded_at"),
        source=source.name[:64],
        note=data.get("note"),
    )
    out = await record_satisfaction(
        session,
        customer_id=found["id"],
        score=measured.score,
        recorded_at=measured.recorded_at,
        source=measured.source,
        note=measured.note,
    )
    return {"customer_id": found["id"], "satisfaction_id": out.id}


async def _revenue_recorded(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    """A deal won or an invoice paid in the CRM: ``amount``, ``currency``, ``occurred_at``
    and the CRM's ``external_id`` (a repeat of it is not recorded twice)."""
    found = await _find(session, Customer, data)
    if found is None:
        raise Failed("No such customer.")
    fact = RevenueIn(
        amount=data.get("amount"),  # type: ignore[arg-type]
        currency=data.get("currency"),  # type: ignore[arg-type]
        occurred_at=data.get("occurred_at"),
        source=source.name[:64],
        external_id=data.get("external_id"),
        note=data.get("note"),
    )
    out, created = await record_revenue(
        session,
        customer_id=found["id"],
        amount=fact.amount,
        currency=fact.currency,
        occurred_at=fact.occurred_at,
        source=fact.source,
        external_id=fact.external_id,
        note=fact.note,
    )
    return {"customer_id": found["id"], "revenue_id": out.id, "created": created}


async def _transfer_refused(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    found = await _find(session, Customer, data)
    if found is None:
        raise Failed("No such customer.")
    handover_id = await repository.last_completed_handover(session, found["id"])
    if handover_id is None:
        raise Failed("The customer was not moved by a completed handover.")
    item = await handover_aftercare.refuse_item(
        session,
        handover_id=handover_id,
        customer_id=found["id"],
        reason=str(data["reason"])[:2000] if data.get("reason") else None,
        actor=actor,
    )
    return {"handover_id": handover_id, "customer_id": found["id"], "status": item.status}


async def _activity_recorded(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    found = await _find(session, Customer, data)
    if found is None:
        raise Failed("No such customer.")
    by = None
    if data.get("by_external_ref"):
        by = await repository.manager_by_external_ref(session, str(data["by_external_ref"]))
        if by is None:
            raise Failed("No manager with `by_external_ref`.")
    activity = ActivityCreate.model_validate(
        {
            "kind": data.get("kind", "other"),
            "at": data.get("at"),
            "by": by,
            "external_id": data.get("external_id"),
            "note": data.get("note"),
        }
    )
    out, new = await record_activity(session, customer_id=found["id"], data=activity, actor=actor)
    return {"customer_id": found["id"], "activity_id": out.id, "new": new}


async def _absence_set(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    found = await _find(session, Manager, data)
    if found is None:
        raise Failed("No such manager.")
    absence = AbsenceCreate.model_validate(
        {
            "starts_at": data.get("starts_at"),
            "ends_at": data.get("ends_at"),
            "kind": data.get("kind", "out_of_office"),
            "cover": data.get("cover", "none"),
            "note": data.get("note"),
        }
    )
    out = await create_absence(session, manager_id=found["id"], data=absence, actor=actor)
    return {"manager_id": found["id"], "absence_id": out.id}


async def _open_absence(session: AsyncSession, data: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID]:
    """The manager and the absence an event names: ``absence_id`` (Baton's), else the
    manager's current absence, else their next scheduled one."""
    found = await _find(session, Manager, data)
    if found is None:
        raise Failed("No such manager.")
    listed = (await absences.list_absences(session, manager_id=found["id"])).items
    if data.get("absence_id"):
        try:
            wanted = uuid.UUID(str(data["absence_id"]))
        except ValueError as exc:
            raise Failed(f"`absence_id` {data['absence_id']!r} is not a UUID.") from exc
        if all(a.id != wanted for a in listed):
            raise Failed("The manager has no such absence.")
        return found["id"], wanted
    for state in ("current", "scheduled"):
        open_ = sorted((a for a in listed if a.state == state), key=lambda a: a.starts_at)
        if open_:
            return found["id"], open_[0].id
    raise Failed("The manager has no current or scheduled absence.")


async def _absence_changed(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    return await _change_absence(
        session, data, {k: data[k] for k in ("starts_at", "ends_at", "note") if k in data}, actor
    )


async def _absence_ended(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    return await _change_absence(
        session, data, {"ends_at": data.get("ends_at") or datetime.now(UTC)}, actor
    )


async def _change_absence(
    session: AsyncSession, data: dict[str, Any], change: dict[str, Any], actor: str
) -> dict[str, Any]:
    """Apply ``change`` to the absence the event names, as ``PATCH`` does (the cover follows)."""
    manager_id, absence_id = await _open_absence(session, data)
    out = await update_absence(
        session,
        manager_id=manager_id,
        absence_id=absence_id,
        data=AbsenceUpdate.model_validate(change),
        actor=actor,
    )
    return {"manager_id": manager_id, "absence_id": out.id, "state": out.state}


async def _absence_cancelled(
    session: AsyncSession, source: LockedEvent, data: dict[str, Any], actor: str
) -> dict[str, Any]:
    manager_id, absence_id = await _open_absence(session, data)
    await cancel_absence(session, manager_id=manager_id, absence_id=absence_id, actor=actor)
    return {"manager_id": manager_id, "absence_id": absence_id, "state": "cancelled"}


HANDLERS: dict[str, Handler] = {
    "manager.upserted": _manager_upserted,
    "manager.deactivated": _manager_deactivated,
    "customer.upserted": _customer_upserted,
    "customer.tier_changed": _customer_tier_changed,
    "customer.churned": _customer_churned,
    "customer.satisfaction_recorded": _satisfaction_recorded,
    "customer.revenue_recorded": _revenue_recorded,
    "customer.transfer_refused": _transfer_refused,
    "customer.activity_recorded": _activity_recorded,
    "manager.absence_set": _absence_set,
    "manager.absence_changed": _absence_changed,
    "manager.absence_ended": _absence_ended,
    "manager.absence_cancelled": _absence_cancelled,
}


async def process_event(factory: SessionFactory, inbox_id: uuid.UUID) -> str | None:
    """Handle one stored event; returns its final status (None if busy or already done)."""
    async with session_scope(factory) as session:
        row = await repository.lock_event(session, inbox_id)
        if row is None or row.status != "received":
            return None
        token = outbox.correlation_id.set(f"inbound:{inbox_id}")
        status, error, result = "processed", None, None
        kind = row.type
        try:
            # read through the source's current mapping: a retry sees a corrected one
            mapping = adapters.mapping_for(row.adapter, row.mapping)
            kind, data, ignored = adapters.translate(row.adapter, mapping, bytes(row.body))
            if ignored:
                raise Ignored(ignored)
            handler = HANDLERS.get(kind or "")
            if handler is None:
                raise Ignored(f"event type {kind!r} is not handled")
            async with session.begin_nested():
                result = result_json(await handler(session, row, data, f"webhook:{row.name}"))
        except Ignored as exc:
            status, error = "ignored", str(exc)
        except Failed as exc:
            status, error = "failed", str(exc)
        except BatonError as exc:
            status, error = "failed", f"{exc.code}: {exc.detail}"
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            status, error = "failed", f"invalid data: {where}: {first.get('msg')}"
        except ValueError as exc:
            status, error = "failed", f"invalid data: {exc}"
        finally:
            outbox.correlation_id.reset(token)
        await repository.record_processing(
            session,
            inbox_id,
            type=kind,
            status=status,
            error=error[:2000] if error else None,
            result=result,
            at=datetime.now(UTC),
        )
    log.info("inbound_webhook_processed", extra={"inbox_id": str(inbox_id), "status": status})
    return status


async def process_stale(factory: SessionFactory, *, now: datetime, limit: int = 200) -> int:
    """The sweep: events still ``received`` a minute after arrival (their job was lost)."""
    async with session_scope(factory) as session:
        ids = await repository.stale_ids(
            session, received_before=now - timedelta(minutes=1), limit=limit
        )
    for inbox_id in ids:
        await process_event(factory, inbox_id)
    return len(ids)
