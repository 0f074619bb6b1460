"""A handover's outcome: churn and satisfaction of the moved customers against a matched control
group, the new owners' figures, and feedback."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInput
from app.handovers import execution_repository, outcome_repository
from app.handovers.schemas import (
    FeedbackIn,
    FeedbackOut,
    GroupOutcome,
    NewOwnerKpis,
    OutcomeOut,
    StratumMatch,
)
from app.handovers.views import require_handover, utc_now
from app.reports import service as reports


def _num(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def _group(row: Mapping[Any, Any] | None) -> GroupOutcome:
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


def _stratum(row: Mapping[Any, Any]) -> StratumMatch:
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
    handover = await require_handover(session, handover_id)
    now = utc_now()
    completed = handover.completed_at
    pivot = completed or handover.created_at
    until = min(now, pivot + timedelta(days=window_days)) if completed else pivot
    groups = await outcome_repository.outcome_groups(
        session, handover_id=handover_id, pivot=pivot, until=until
    )
    strata = [
        _stratum(r)
        for r in await outcome_repository.outcome_strata(
            session, handover_id=handover_id, pivot=pivot, until=until
        )
    ]
    feedback = [
        FeedbackOut.model_validate(r)
        for r in await outcome_repository.list_feedback(session, handover_id)
    ]
    scores = [float(f.score) for f in feedback if f.score is not None]
    return OutcomeOut(
        new_owners=await _new_owners(session, handover_id=handover_id, pivot=pivot, until=until),
        handover_id=handover_id,
        state=handover.state,
        period_start=pivot,
        period_end=until,
        window_days=window_days,
        moved=_group(groups.get("moved")),
        control=_group(groups.get("control")),
        control_retention_rate_matched=_matched_rate(strata),
        matching=strata,
        refusals=await execution_repository.refusal_count(session, handover_id),
        hours_to_complete=(
            round((completed - handover.created_at).total_seconds() / 3600, 4)
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
    received = await outcome_repository.received_counts(session, handover_id)
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
    await require_handover(session, handover_id)
    if data.score is None and data.note is None:
        raise InvalidInput(
            "Give a score, a note, or both.",
            errors=[{"loc": ["body"], "msg": "score or note is required"}],
        )
    row = await outcome_repository.add_feedback(
        session, handover_id=handover_id, score=data.score, note=data.note, actor=actor
    )
    return FeedbackOut.model_validate(row)
