"""HTTP routes for managers' absences."""

import uuid

from fastapi import status

from app.absences import service
from app.absences.schemas import (
    AbsenceCreate,
    AbsenceList,
    AbsenceOut,
    AbsenceState,
    AbsenceUpdate,
)
from app.api.auth import OPERATORS_AND_CRM, STAFF_AND_CRM, allow
from app.api.deps import CurrentCaller, DbSession
from app.api.routing import BatonRoute, PrefixedRouter
from app.errors import problem_responses
from app.flows import availability

router = PrefixedRouter(
    prefix="/managers",
    tags=["absences"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF_AND_CRM, write=OPERATORS_AND_CRM, delete=OPERATORS_AND_CRM)],
)


@router.post(
    "/{manager_id}/absences",
    response_model=AbsenceOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record an absence",
    responses=problem_responses(404, 409),
)
async def create_absence(
    session: DbSession, caller: CurrentCaller, manager_id: uuid.UUID, body: AbsenceCreate
) -> AbsenceOut:
    """Record a period the manager takes no new customers (leave, sickness, out of office…).

    While it is current every placement skips the manager and the placement guard refuses
    giving them a customer (rule `absent`); what they hold stays. 409 `absence_overlap` when
    another absence covers part of the period.
    """
    return await availability.create_absence(
        session, manager_id=manager_id, data=body, actor=caller.name
    )


@router.get(
    "/{manager_id}/absences",
    response_model=AbsenceList,
    summary="A manager's absences",
    responses=problem_responses(404),
)
async def list_absences(
    session: DbSession, manager_id: uuid.UUID, state: AbsenceState | None = None
) -> AbsenceList:
    """The manager's absences by start, each with its state now (scheduled, current, ended,
    cancelled)."""
    return await service.list_absences(session, manager_id=manager_id, state=state)


@router.patch(
    "/{manager_id}/absences/{absence_id}",
    response_model=AbsenceOut,
    summary="End an absence early or extend it",
    responses=problem_responses(404, 409),
)
async def update_absence(
    session: DbSession,
    caller: CurrentCaller,
    manager_id: uuid.UUID,
    absence_id: uuid.UUID,
    body: AbsenceUpdate,
) -> AbsenceOut:
    """Change `ends_at` (end early, extend), a scheduled start or the note; an `auto` cover
    follows (ended early: its customers return at once). An ended or cancelled absence no
    longer changes (409 `invalid_transition`)."""
    return await availability.update_absence(
        session, manager_id=manager_id, absence_id=absence_id, data=body, actor=caller.name
    )


@router.delete(
    "/{manager_id}/absences/{absence_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Cancel an absence",
    responses=problem_responses(404, 409),
)
async def cancel_absence(
    session: DbSession, caller: CurrentCaller, manager_id: uuid.UUID, absence_id: uuid.UUID
) -> None:
    """Cancel a scheduled or current absence; it stays listed as cancelled (an `auto` cover
    is cancelled, or its customers return)."""
    await availability.cancel_absence(
        session, manager_id=manager_id, absence_id=absence_id, actor=caller.name
    )
