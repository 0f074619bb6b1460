"""Absences with cover ``auto``: the absence and its leave handover move together.

Recording the absence drafts, plans and approves a ``leave`` handover of the manager's
customers, effective at the start and until the end: the worker executes it when the absence
starts and returns the customers when it ends (the existing due-handover and cover-return
sweeps). Ending the absence early returns them at once (or cancels a handover not executed
yet); extending or moving it moves the handover's dates; cancelling the absence cancels the
handover, or returns the customers if it has run.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.absences import service as absences
from app.absences.schemas import AbsenceCreate, AbsenceOut, AbsenceUpdate
from app.handovers import aftercare as handover_aftercare
from app.handovers import lifecycle as handover_lifecycle
from app.handovers import planning as handover_planning
from app.handovers import views as handover_views
from app.handovers.schemas import ActionIn, HandoverCreate
from app.vocabulary import OPEN_HANDOVER_STATES, HandoverReason


async def create_absence(
    session: AsyncSession, *, manager_id: uuid.UUID, data: AbsenceCreate, actor: str
) -> AbsenceOut:
    """Record the absence; with cover ``auto``, its leave handover planned and approved."""
    absence = await absences.create_absence(session, manager_id=manager_id, data=data, actor=actor)
    if absence.cover != "auto":
        return absence
    handover = await handover_planning.create_handover(
        session,
        data=HandoverCreate(
            from_manager_id=manager_id,
            reason=HandoverReason.LEAVE,
            effective_at=data.starts_at,
            until=data.ends_at,
            note=f"Cover of absence {absence.id}.",
        ),
        actor=actor,
    )
    await handover_planning.plan_handover(session, handover_id=handover.id, actor=actor)
    await handover_lifecycle.approve_handover(
        session, handover_id=handover.id, data=ActionIn(), actor=actor
    )
    return await absences.set_cover_handover(
        session, absence_id=absence.id, handover_id=handover.id
    )


async def update_absence(
    session: AsyncSession,
    *,
    manager_id: uuid.UUID,
    absence_id: uuid.UUID,
    data: AbsenceUpdate,
    actor: str,
) -> AbsenceOut:
    """Change the absence; an ``auto`` cover follows its new dates."""
    absence = await absences.update_absence(
        session, manager_id=manager_id, absence_id=absence_id, data=data
    )
    if absence.cover_handover_id is not None:
        await _follow(session, absence, actor=actor)
    return absence


async def cancel_absence(
    session: AsyncSession, *, manager_id: uuid.UUID, absence_id: uuid.UUID, actor: str
) -> None:
    """Cancel the absence; an ``auto`` cover is cancelled, or its customers return."""
    await absences.cancel_absence(session, manager_id=manager_id, absence_id=absence_id)
    absence = await absences.get_absence(session, manager_id=manager_id, absence_id=absence_id)
    if absence.cover_handover_id is not None:
        await _end_cover(session, absence.cover_handover_id, actor=actor)


async def _follow(session: AsyncSession, absence: AbsenceOut, *, actor: str) -> None:
    assert absence.cover_handover_id is not None
    if absence.ends_at <= datetime.now(UTC):
        await _end_cover(session, absence.cover_handover_id, actor=actor)
        return
    handover = await handover_views.get_handover(session, handover_id=absence.cover_handover_id)
    if handover.state in OPEN_HANDOVER_STATES or (
        handover.state == "completed" and handover.cover_returned_at is None
    ):
        await handover_lifecycle.reschedule_leave(
            session,
            handover_id=handover.id,
            effective_at=absence.starts_at,
            until=absence.ends_at,
        )


async def _end_cover(session: AsyncSession, handover_id: uuid.UUID, *, actor: str) -> None:
    handover = await handover_views.get_handover(session, handover_id=handover_id)
    if handover.state in OPEN_HANDOVER_STATES:
        await handover_lifecycle.cancel_handover(
            session, handover_id=handover_id, data=ActionIn(note="absence ended"), actor=actor
        )
    elif handover.state == "completed" and handover.cover_returned_at is None:
        await handover_aftercare.return_cover(session, handover_id=handover_id, actor=actor)
