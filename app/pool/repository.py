"""SQL for the public pool: who is due a warning or a reclaim, claims counted from the ledger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Customer, ReclaimPolicy, Tier
from app.db.rows import rows_as
from app.vocabulary import OPEN_HANDOVER_STATES, sql_list


@dataclass(frozen=True, slots=True)
class WaitingRow:
    """A pool customer: since when and why it waits."""

    customer_id: uuid.UUID
    tier: str
    waiting_since: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class ReclaimRow:
    """A customer a sweep would return to the pool."""

    customer_id: uuid.UUID
    manager_id: uuid.UUID
    tier: str
    quiet_since: datetime


class Warned(NamedTuple):
    """A customer that entered its warning period."""

    customer_id: uuid.UUID
    manager_id: uuid.UUID
    reclaim_at: datetime


class FirstTouchMissed(NamedTuple):
    """A customer whose new owner has not touched it in time."""

    customer_id: uuid.UUID
    manager_id: uuid.UUID
    owner_since: datetime


_OPEN_HANDOVER_STATES = sql_list(OPEN_HANDOVER_STATES)

# The instant a customer's inactivity counts from: the latest follow-up, or when the owner
# got it (a fresh owner is not reclaimed for the previous owner's silence).
_QUIET_SINCE = "COALESCE(GREATEST(c.last_activity_at, c.owner_since), c.created_at)"

# Owned, active, not pinned, not in an open handover, under a tier with a policy.
_RECLAIMABLE = f"""
      FROM customers AS c
      JOIN reclaim_policies AS p ON p.tier_code = c.tier_code
     WHERE c.manager_id IS NOT NULL AND c.status = 'active' AND NOT c.pinned
       AND NOT EXISTS (
             SELECT 1 FROM handover_items AS hi JOIN handovers AS h ON h.id = hi.handover_id
              WHERE hi.customer_id = c.id AND h.state IN ({_OPEN_HANDOVER_STATES}))
"""

# Due now: quiet for inactive_days, and warned at least warning_days ago (after the last
# follow-up) when the policy warns.
_DUE = f"""
       AND {_QUIET_SINCE} <= CAST(:now AS timestamptz) - make_interval(days => p.inactive_days)
       AND (p.warning_days = 0
            OR (c.reclaim_warned_at > {_QUIET_SINCE}
                AND c.reclaim_warned_at
                    <= CAST(:now AS timestamptz) - make_interval(days => p.warning_days)))
"""

_WARN = text(
    f"""
    UPDATE customers AS c SET reclaim_warned_at = CAST(:now AS timestamptz)
      FROM (SELECT c.id, c.manager_id,
                   GREATEST({_QUIET_SINCE} + make_interval(days => p.inactive_days),
                            CAST(:now AS timestamptz) + make_interval(days => p.warning_days))
                     AS reclaim_at
              {_RECLAIMABLE}
               AND p.warning_days > 0
               AND {_QUIET_SINCE} <= CAST(:now AS timestamptz)
                                     - make_interval(days => p.inactive_days - p.warning_days)
               AND (c.reclaim_warned_at IS NULL OR c.reclaim_warned_at <= {_QUIET_SINCE})
             ORDER BY c.id
               FOR UPDATE OF c SKIP LOCKED) AS w
     WHERE c.id = w.id
    RETURNING c.id, w.manager_id, w.reclaim_at
    """
)

# Owned customers whose owner got them first_touch_hours ago with no follow-up since,
# escalated once per owner period.
_FIRST_TOUCH_MISSED = text(
    """
    UPDATE customers AS c SET first_touch_missed_at = CAST(:now AS timestamptz)
      FROM reclaim_policies AS p
     WHERE p.tier_code = c.tier_code AND p.first_touch_hours IS NOT NULL
       AND c.manager_id IS NOT NULL AND c.status = 'active'
       AND c.owner_since <= CAST(:now AS timestamptz) - make_interval(hours => p.first_touch_hours)
       AND (c.last_activity_at IS NULL OR c.last_activity_at < c.owner_since)
       AND (c.first_touch_missed_at IS NULL OR c.first_touch_missed_at < c.owner_since)
    RETURNING c.id, c.manager_id, c.owner_since
    """
)

_PREVIEW = text(
    f"""
    SELECT c.id AS customer_id, c.manager_id, c.tier_code AS tier,
           {_QUIET_SINCE} AS quiet_since
      {_RECLAIMABLE}
      {_DUE}
     ORDER BY c.id
     LIMIT :limit
    """
)

_DUE_IDS = text(
    f"""
    WITH due AS MATERIALIZED (
        SELECT c.id {_RECLAIMABLE} {_DUE} ORDER BY c.id FOR UPDATE OF c SKIP LOCKED)
    SELECT coalesce(array_agg(id), '{{}}') FROM due
    """
)

_LAST_RECLAIM = text(
    """
    SELECT max(a.ended_at) FROM assignments AS a
     WHERE a.customer_id = :customer_id AND a.manager_id = :manager_id
       AND a.end_reason = 'reclaimed_inactive'
    """
)

_WAITING = text(
    """
    SELECT c.id AS customer_id, c.tier_code AS tier,
           COALESCE(l.ended_at, c.created_at) AS waiting_since,
           CASE WHEN l.ended_at IS NULL THEN 'never_placed'
                WHEN l.end_reason = 'reclaimed_inactive' THEN 'reclaimed_inactive'
                ELSE 'unassigned' END AS reason
      FROM customers AS c
      LEFT JOIN LATERAL (
            SELECT a.ended_at, a.end_reason FROM assignments AS a
             WHERE a.customer_id = c.id ORDER BY a.id DESC LIMIT 1) AS l ON true
     WHERE c.manager_id IS NULL AND c.status = 'active'
       AND (CAST(:after AS uuid) IS NULL OR c.id > CAST(:after AS uuid))
     ORDER BY c.id
     LIMIT :limit
    """
)

_CLAIMS_SINCE = text(
    """
    SELECT count(*) FROM assignments
     WHERE manager_id = :manager_id AND reason = 'claim' AND started_at > :since
    """
)


async def waiting(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int
) -> list[WaitingRow]:
    """Pool customers by id after ``after``: since when and why each waits."""
    result = await session.execute(_WAITING, {"after": after, "limit": limit})
    return rows_as(WaitingRow, result.mappings())


async def warn_due(session: AsyncSession, *, now: datetime) -> list[Warned]:
    """Mark the customers entering their warning period as warned; returns (customer id,
    owner, reclaim_at) for each, one statement."""
    return [Warned(*r) for r in (await session.execute(_WARN, {"now": now})).all()]


async def escalate_first_touch(session: AsyncSession, *, now: datetime) -> list[FirstTouchMissed]:
    """Mark the customers whose first touch is overdue at ``now`` as escalated; returns
    (customer id, owner, owner since) for each, one statement."""
    rows = (await session.execute(_FIRST_TOUCH_MISSED, {"now": now})).all()
    return [FirstTouchMissed(*r) for r in rows]


async def preview(session: AsyncSession, *, now: datetime, limit: int) -> list[ReclaimRow]:
    """The customers a sweep at ``now`` would reclaim (up to ``limit``)."""
    result = await session.execute(_PREVIEW, {"now": now, "limit": limit})
    return rows_as(ReclaimRow, result.mappings())


async def lock_due(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Lock and return the customers due to return to the pool at ``now`` (one statement);
    rows another transaction holds are left for the next sweep."""
    return list((await session.execute(_DUE_IDS, {"now": now})).scalar_one())


async def last_reclaim(
    session: AsyncSession, *, customer_id: uuid.UUID, manager_id: uuid.UUID
) -> datetime | None:
    """When the customer was last reclaimed from the manager, if ever."""
    return await session.scalar(
        _LAST_RECLAIM, {"customer_id": customer_id, "manager_id": manager_id}
    )


async def claims_since(session: AsyncSession, *, manager_id: uuid.UUID, since: datetime) -> int:
    """How many customers the manager claimed after ``since``."""
    return int(await session.scalar(_CLAIMS_SINCE, {"manager_id": manager_id, "since": since}))


_TO_REPLACE = text(
    f"""
    SELECT c.id, c.manager_id
      FROM customers AS c JOIN reclaim_policies AS p ON p.tier_code = c.tier_code
     WHERE c.id = ANY(CAST(:ids AS uuid[])) AND p.first_touch_action = 'replace'
       AND NOT c.pinned AND c.manager_id IS NOT NULL
       AND NOT EXISTS (
             SELECT 1 FROM handover_items AS hi JOIN handovers AS h ON h.id = hi.handover_id
              WHERE hi.customer_id = c.id AND h.state IN ({_OPEN_HANDOVER_STATES}))
     ORDER BY c.id
    """
)


async def to_replace(
    session: AsyncSession, customer_ids: list[uuid.UUID]
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Of customers that missed their first touch, the ones their tier's policy re-places
    (not pinned, not in an open handover): (customer, owner)."""
    if not customer_ids:
        return []
    rows = await session.execute(_TO_REPLACE, {"ids": customer_ids})
    return [(r[0], r[1]) for r in rows.all()]


# Reclaimed customers wait to be claimed, not placed.
_WAITING_IDS = text(
    """
    SELECT c.id FROM customers AS c
      LEFT JOIN LATERAL (
            SELECT a.end_reason FROM assignments AS a
             WHERE a.customer_id = c.id ORDER BY a.id DESC LIMIT 1) AS l ON true
     WHERE c.manager_id IS NULL AND c.status = 'active' AND NOT c.pinned
       AND l.end_reason IS DISTINCT FROM 'reclaimed_inactive'
     ORDER BY c.id
     LIMIT :limit
    """
)


async def waiting_ids(session: AsyncSession, *, limit: int) -> list[uuid.UUID]:
    """The first ``limit`` pool customers waiting for an owner (not pinned, not reclaimed:
    those wait for a claim), by id."""
    return list((await session.scalars(_WAITING_IDS, {"limit": limit})).all())


async def tier_exists(session: AsyncSession, tier: str) -> bool:
    """Whether the tier exists."""
    return await session.scalar(select(Tier.code).where(Tier.code == tier)) is not None


async def upsert_policy(session: AsyncSession, tier: str, values: dict[str, Any]) -> None:
    """Create or replace the tier's pool rules (a replacement bumps the version)."""
    await session.execute(
        pg_insert(ReclaimPolicy)
        .values(tier_code=tier, **values)
        .on_conflict_do_update(
            index_elements=["tier_code"],
            set_={**values, "version": ReclaimPolicy.version + 1, "updated_at": func.now()},
        )
    )


async def get_policy(session: AsyncSession, tier: str) -> ReclaimPolicy | None:
    """The tier's pool rules, read afresh."""
    return await session.scalar(
        select(ReclaimPolicy)
        .where(ReclaimPolicy.tier_code == tier)
        .execution_options(populate_existing=True)
    )


async def list_policies(session: AsyncSession) -> list[ReclaimPolicy]:
    """Every tier's pool rules, by tier code."""
    return list(await session.scalars(select(ReclaimPolicy).order_by(ReclaimPolicy.tier_code)))


async def lock_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer | None:
    """The customer, locked for a claim."""
    return await session.scalar(
        select(Customer).where(Customer.id == customer_id).with_for_update()
    )
