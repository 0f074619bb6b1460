"""Working hours: whether a manager is at work at an instant, in their own time zone."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.managers import repository

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def at_work(windows: Sequence[Mapping[str, object]], time_zone: str | None, at: datetime) -> bool:
    """Whether ``at`` falls in one of the windows (``{days, start, end}``, local ``HH:MM``;
    ``end`` exclusive, ``24:00`` the end of the day) in ``time_zone`` (None: UTC)."""
    local = at.astimezone(ZoneInfo(time_zone or "UTC"))
    day = WEEKDAYS[local.weekday()]
    clock = local.strftime("%H:%M")
    return any(
        day in w["days"] and str(w["start"]) <= clock < str(w["end"])  # type: ignore[operator]
        for w in windows
    )


async def off_hours(session: AsyncSession, *, at: datetime) -> set[uuid.UUID]:
    """The managers with working hours who are outside them at ``at``."""
    rows = await repository.working_hours(session)
    return {r.id for r in rows if not at_work(r.working_hours, r.time_zone, at)}
