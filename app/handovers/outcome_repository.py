"""SQL for a handover's outcome: the moved customers against a matched control group, the new
owners' intake, and feedback."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    HandoverFeedback,
    HandoverItem,
)

# The moved customers and a control group matched on tier and region: customers active and owned
# at execution (the pivot), not in this handover, with no ledger row started in the observation
# window [pivot, until]. A stratum (tier, region) of moved customers with no such customer in
# its region is matched on tier alone. Churn counts only inside (pivot, until]; satisfaction
# before is the latest score at or before the pivot (the customer's field when it has no score
# at all), after is the latest score inside the window.
_OUTCOME_MEMBERS = """
    WITH moved AS (
        SELECT c.id, c.tier_code, c.region, c.churned_at, c.satisfaction
          FROM handover_items AS hi JOIN customers AS c ON c.id = hi.customer_id
         WHERE hi.handover_id = :handover AND hi.moved_at IS NOT NULL),
    strata AS (SELECT tier_code, region, count(*) AS moved FROM moved GROUP BY tier_code, region),
    candidates AS (
        SELECT c.id, c.tier_code, c.region, c.churned_at, c.satisfaction
          FROM customers AS c
         WHERE c.tier_code IN (SELECT tier_code FROM strata)
           AND (c.churned_at IS NULL OR c.churned_at > :pivot)
           AND EXISTS (SELECT 1 FROM assignments AS a
                        WHERE a.customer_id = c.id AND a.started_at < :pivot
                          AND (a.ended_at IS NULL OR a.ended_at > :pivot))
           AND NOT EXISTS (SELECT 1 FROM assignments AS a
                            WHERE a.customer_id = c.id
                              AND a.started_at >= :pivot AND a.started_at <= :until)
           AND NOT EXISTS (SELECT 1 FROM handover_items AS hi
                            WHERE hi.handover_id = :handover AND hi.customer_id = c.id)),
    matched AS (
        SELECT s.tier_code, s.region, s.moved,
               EXISTS (SELECT 1 FROM candidates AS k
                        WHERE k.tier_code = s.tier_code
                          AND k.region IS NOT DISTINCT FROM s.region) AS by_region
          FROM strata AS s),
    control AS (
        SELECT m.tier_code AS stratum_tier, m.region AS stratum_region, m.by_region, k.*
          FROM matched AS m
          JOIN candidates AS k
            ON k.tier_code = m.tier_code
           AND (NOT m.by_region OR k.region IS NOT DISTINCT FROM m.region))
"""


_OUTCOME_STATS = """
    SELECT {keys}
           count(*) AS customers,
           count(*) FILTER (WHERE g.churned_at IS NULL OR g.churned_at > :until) AS retained,
           count(*) FILTER (WHERE g.churned_at > :pivot AND g.churned_at <= :until) AS churned,
           avg(b.score) AS satisfaction_before,
           avg(l.score) AS satisfaction_latest,
           avg(l.score - b.score) AS satisfaction_change
      FROM {group} AS g
      LEFT JOIN LATERAL (
          SELECT COALESCE(
              (SELECT s.score FROM satisfaction_scores AS s
                WHERE s.customer_id = g.id AND s.recorded_at <= :pivot
                ORDER BY s.recorded_at DESC, s.id DESC LIMIT 1),
              CASE WHEN NOT EXISTS (SELECT 1 FROM satisfaction_scores AS s
                                     WHERE s.customer_id = g.id) THEN g.satisfaction END
          ) AS score) AS b ON true
      LEFT JOIN LATERAL (
          SELECT s.score FROM satisfaction_scores AS s
           WHERE s.customer_id = g.id AND s.recorded_at > :pivot AND s.recorded_at <= :until
           ORDER BY s.recorded_at DESC, s.id DESC LIMIT 1) AS l ON true
    {group_by}
"""


_OUTCOME_GROUPS = (
    _OUTCOME_MEMBERS
    + ", control_customers AS (SELECT DISTINCT ON (id) * FROM control ORDER BY id)"
    + _OUTCOME_STATS.format(keys="'moved' AS grp,", group="moved", group_by="")
    + " UNION ALL "
    + _OUTCOME_STATS.format(keys="'control' AS grp,", group="control_customers", group_by="")
)


_OUTCOME_STRATA = (
    _OUTCOME_MEMBERS
    + """, per_control AS ("""
    + _OUTCOME_STATS.format(
        keys="g.stratum_tier, g.stratum_region,",
        group="control",
        group_by="GROUP BY g.stratum_tier, g.stratum_region",
    )
    + """)
    SELECT m.tier_code AS tier, m.region, m.moved, m.by_region,
           COALESCE(p.customers, 0) AS control, COALESCE(p.retained, 0) AS control_retained
      FROM matched AS m
      LEFT JOIN per_control AS p
        ON p.stratum_tier = m.tier_code AND p.stratum_region IS NOT DISTINCT FROM m.region
     ORDER BY m.tier_code, m.region NULLS LAST
"""
)


async def outcome_groups(
    session: AsyncSession, *, handover_id: uuid.UUID, pivot: datetime, until: datetime
) -> dict[str, RowMapping]:
    """Retention, churn and satisfaction of the moved customers (``moved``) and of their
    matched control group (``control``) over the window ``(pivot, until]``."""
    params = {"handover": handover_id, "pivot": pivot, "until": until}
    # Planned for this handover's size and window, never a generic plan (see reports).
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    rows = (await session.execute(text(_OUTCOME_GROUPS), params)).mappings()
    return {row["grp"]: row for row in rows}


async def outcome_strata(
    session: AsyncSession, *, handover_id: uuid.UUID, pivot: datetime, until: datetime
) -> list[RowMapping]:
    """Per (tier, region) of the moved customers: how many moved, how the control was matched
    (region or tier only), its size and how many of it were retained."""
    params = {"handover": handover_id, "pivot": pivot, "until": until}
    return list((await session.execute(text(_OUTCOME_STRATA), params)).mappings())


async def received_counts(session: AsyncSession, handover_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """How many customers each new owner got from the handover."""
    rows = await session.execute(
        select(HandoverItem.final_manager_id, func.count())
        .where(
            HandoverItem.handover_id == handover_id,
            HandoverItem.moved_at.is_not(None),
            HandoverItem.final_manager_id.is_not(None),
        )
        .group_by(HandoverItem.final_manager_id)
    )
    return {manager_id: int(n) for manager_id, n in rows.all() if manager_id is not None}


async def add_feedback(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    score: Any,
    note: str | None,
    actor: str,
) -> RowMapping:
    """Store one feedback entry on a handover and return it."""
    result = await session.execute(
        insert(HandoverFeedback)
        .values(handover_id=handover_id, score=score, note=note, actor=actor)
        .returning(*HandoverFeedback.__table__.c)
    )
    return result.mappings().one()


async def list_feedback(session: AsyncSession, handover_id: uuid.UUID) -> list[RowMapping]:
    """A handover's feedback entries, oldest first."""
    rows = await session.execute(
        select(*HandoverFeedback.__table__.c)
        .where(HandoverFeedback.handover_id == handover_id)
        .order_by(HandoverFeedback.id)
    )
    return list(rows.mappings())
