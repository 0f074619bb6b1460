"""Absence use cases: record, list, end early or extend, cancel.

While an absence is current the manager is ``absent`` to the engine and the placement guard
(``app.assignments.loading`` reads it at the transaction's clock): no new customer, by any
path, while what the manager already holds stays.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.absences import repository
from app.absences.schemas import (
    AbsenceCreate,
    AbsenceList,
    AbsenceOut,
    AbsenceState,
    AbsenceUpdate,
    parse_cover,
)
from app.db.models import Manager, ManagerAbsence
from app.errors import Conflict, InvalidInput, InvalidTransition, NotFound


class AbsenceOverlap(Conflict):
    """The manager already has an absence in that period."""

    code = "absence_overlap"


def state_of(absence: ManagerAbsence, now: datetime) -> AbsenceState:
    """Where the absence stands at ``now``."""
    if absence.cancelled_at is not None:
        return "cancelled"
    if now < absence.starts_at:
        return "scheduled"
    return "current" if now < absence.ends_at else "ended"


def to_out(absence: ManagerAbsence, now: datetime) -> AbsenceOut:
    """The public view at ``now``."""
    cover = f"interim:{absence.interim_manager_id}" if absence.cover == "interim" else absence.cover
    return AbsenceOut(
        id=absence.id,
        manager_id=absence.manager_id,
        starts_at=absence.starts_at,
        ends_at=absence.ends_at,
        kind=absence.kind,  # type: ignore[arg-type]
        cover=cover,
        interim_manager_id=absence.interim_manager_id,
        cover_handover_id=absence.cover_handover_id,
        note=absence.note,
        state=state_of(absence, now),
        created_by=absence.created_by,
        created_at=absence.created_at,
        cancelled_at=absence.cancelled_at,
    )


async def _lock_manager(session: AsyncSession, manager_id: uuid.UUID) -> Manager:
    # one writer per manager's calendar at a time, so two overlapping absences cannot both pass
    manager = await repository.lock_manager(session, manager_id)
    if manager is None:
        raise NotFound(f"Manager {manager_id} does not exist.")
    return manager


async def _check_cover(
    session: AsyncSession, manager_id: uuid.UUID, cover: str
) -> tuple[str, uuid.UUID | None]:
    kind, interim = parse_cover(cover)
    if interim is None:
        return kind, None
    if interim == manager_id:
        raise InvalidInput("A manager cannot cover their own absence.")
    status = await repository.manager_status(session, interim)
    if status is None:
        raise InvalidInput(f"The interim manager {interim} does not exist.")
    if status != "active":
        raise InvalidInput(f"The interim manager {interim} is {status}.")
    return kind, interim


async def _check_overlap(
    session: AsyncSession,
    manager_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
    *,
    besides: uuid.UUID | None = None,
) -> None:
    other = await repository.overlapping(session, manager_id, starts_at, ends_at, besides=besides)
    if other is not None:
        raise AbsenceOverlap(
            f"The manager already has absence {other} in that period.", absence_id=str(other)
        )


async def create_absence(
    session: AsyncSession, *, manager_id: uuid.UUID, data: AbsenceCreate, actor: str
) -> AbsenceOut:
    """Record an absence; 409 ``absence_overlap`` if another one covers part of the period."""
    await _lock_manager(session, manager_id)
    cover, interim = await _check_cover(session, manager_id, data.cover)
    await _check_overlap(session, manager_id, data.starts_at, data.ends_at)
    absence = ManagerAbsence(
        manager_id=manager_id,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        kind=data.kind,
        cover=cover,
        interim_manager_id=interim,
        note=data.note,
        created_by=actor,
    )
    await repository.add(session, absence)
    return to_out(absence, await repository.now(session))


async def list_absences(
    session: AsyncSession, *, manager_id: uuid.UUID, state: AbsenceState | None = None
) -> AbsenceList:
    """The manager's absences by start, optionally only those in ``state``."""
    if not await repository.manager_exists(session, manager_id):
        raise NotFound(f"Manager {manager_id} does not exist.")
    rows = await repository.list_for_manager(session, manager_id)
    now = await repository.now(session)
    items = [to_out(a, now) for a in rows]
    return AbsenceList(items=[a for a in items if state is None or a.state == state])


async def _get_open(
    session: AsyncSession, manager_id: uuid.UUID, absence_id: uuid.UUID, now: datetime
) -> ManagerAbsence:
    absence = await repository.get_for_manager(session, manager_id, absence_id)
    if absence is None:
        raise NotFound(f"Absence {absence_id} of manager {manager_id} does not exist.")
    state = state_of(absence, now)
    if state in ("cancelled", "ended"):
        raise InvalidTransition(f"The absence is {state}; it can no longer change.")
    return absence


async def update_absence(
    session: AsyncSession,
    *,
    manager_id: uuid.UUID,
    absence_id: uuid.UUID,
    data: AbsenceUpdate,
) -> AbsenceOut:
    """End early or extend (``ends_at``), move a scheduled start, change the note.

    An ``ends_at`` at or before now ends the absence now-ish: the manager is available again
    from that instant. A current absence keeps its start (it has begun).
    """
    await _lock_manager(session, manager_id)
    now = await repository.now(session)
    absence = await _get_open(session, manager_id, absence_id, now)
    sent = data.model_fields_set
    starts_at = data.starts_at if "starts_at" in sent and data.starts_at else absence.starts_at
    ends_at = data.ends_at if "ends_at" in sent and data.ends_at else absence.ends_at
    if starts_at != absence.starts_at and state_of(absence, now) == "current":
        raise InvalidTransition("The absence has begun; its start can no longer move.")
    if ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at.")
    await _check_overlap(session, manager_id, starts_at, ends_at, besides=absence.id)
    if "note" in sent:
        absence.note = data.note
    absence.starts_at, absence.ends_at = starts_at, ends_at
    absence.updated_at = now
    absence.version += 1
    await session.flush()
    return to_out(absence, now)


async def cancel_absence(
    session: AsyncSession, *, manager_id: uuid.UUID, absence_id: uuid.UUID
) -> None:
    """Cancel a scheduled or current absence (kept, marked cancelled): the manager is
    available again at once."""
    await _lock_manager(session, manager_id)
    now = await repository.now(session)
    absence = await _get_open(session, manager_id, absence_id, now)
    absence.cancelled_at = now
    absence.updated_at = now
    absence.version += 1
    await session.flush()


async def set_cover_handover(
    session: AsyncSession, *, absence_id: uuid.UUID, handover_id: uuid.UUID
) -> AbsenceOut:
    """Link the leave handover that covers an ``auto`` absence."""
    absence = await repository.get(session, absence_id)
    if absence is None:
        raise NotFound(f"Absence {absence_id} does not exist.")
    absence.cover_handover_id = handover_id
    await session.flush()
    return to_out(absence, await repository.now(session))


async def get_absence(
    session: AsyncSession, *, manager_id: uuid.UUID, absence_id: uuid.UUID
) -> AbsenceOut:
    """One absence of the manager, or NotFound."""
    absence = await repository.get_for_manager(session, manager_id, absence_id)
    if absence is None:
        raise NotFound(f"Absence {absence_id} of manager {manager_id} does not exist.")
    return to_out(absence, await repository.now(session))
