"""SQL for executing a handover and for what follows: locking and moving items, rolling them
back, and the customers' and owners' notifications until they settle. Set-based."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import RowMapping, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    HandoverItem,
)
from app.handovers.repository import PENDING_ITEM_STATUSES


async def lock_movable(
    session: AsyncSession, *, handover_id: uuid.UUID, owners: Sequence[uuid.UUID]
) -> tuple[list[uuid.UUID], list[uuid.UUID | None]]:
    """Lock (in id order) the customers of pending items still owned by one of ``owners`` and
    return them with their target owner (override, else proposal; None = pool).

    Under READ COMMITTED a row changed by a concurrent transaction is re-checked after its
    lock is granted, so a customer moved away meanwhile is not returned."""
    rows = await session.execute(
        text(
            """
            SELECT c.id, COALESCE(hi.override_manager_id, hi.proposed_manager_id)
              FROM handover_items AS hi
              JOIN customers AS c ON c.id = hi.customer_id
             WHERE hi.handover_id = :handover
               AND hi.status IN ('proposed', 'overridden', 'unplaced')
               AND c.manager_id = ANY(CAST(:owners AS uuid[]))
             ORDER BY c.id
               FOR UPDATE OF c
            """
        ),
        {"handover": handover_id, "owners": list(owners)},
    )
    ids: list[uuid.UUID] = []
    targets: list[uuid.UUID | None] = []
    for customer_id, target in rows:
        ids.append(customer_id)
        targets.append(target)
    return ids, targets


async def mark_moved(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    customer_ids: Sequence[uuid.UUID],
    manager_ids: Sequence[uuid.UUID | None],
    at: datetime,
    notify: bool,
) -> None:
    """Record the executed moves on their items (one statement)."""
    await session.execute(
        text(
            """
            UPDATE handover_items AS hi
               SET final_manager_id = m.manager_id,
                   status = CASE WHEN m.manager_id IS NULL THEN 'pooled' ELSE 'moved' END,
                   moved_at = :at,
                   notification_status = CASE WHEN :notify AND m.manager_id IS NOT NULL
                                              THEN 'pending' END
              FROM unnest(CAST(:ids AS uuid[]), CAST(:managers AS uuid[]))
                   AS m(customer_id, manager_id)
             WHERE hi.handover_id = :handover AND hi.customer_id = m.customer_id
            """
        ),
        {
            "handover": handover_id,
            "ids": list(customer_ids),
            "managers": list(manager_ids),
            "at": at,
            "notify": notify,
        },
    )


async def skip_remaining(session: AsyncSession, *, handover_id: uuid.UUID, note: str) -> int:
    """Items not executed (their customer moved away meanwhile) become ``skipped``."""
    result = await session.execute(
        update(HandoverItem)
        .where(
            HandoverItem.handover_id == handover_id,
            HandoverItem.status.in_(PENDING_ITEM_STATUSES),
        )
        .values(status="skipped", outcome_note=note)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def lock_executed(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    statuses: Sequence[str],
    customer_id: uuid.UUID | None = None,
) -> list[RowMapping]:
    """Executed items with their customer's current owner and whether the customer's owner
    changed after the item's move (any later ledger row); customers locked in id order."""
    rows = await session.execute(
        text(
            """
            SELECT hi.customer_id, hi.original_manager_id, hi.final_manager_id,
                   c.manager_id AS current_manager_id, c.status AS customer_status,
                   (SELECT m.status FROM managers AS m WHERE m.id = hi.original_manager_id)
                       AS original_manager_status,
                   EXISTS (SELECT 1 FROM assignments AS a
                            WHERE a.customer_id = hi.customer_id
                              AND a.started_at > hi.moved_at) AS moved_since
              FROM handover_items AS hi
              JOIN customers AS c ON c.id = hi.customer_id
             WHERE hi.handover_id = :handover AND hi.status = ANY(CAST(:statuses AS text[]))
               AND (CAST(:customer AS uuid) IS NULL OR hi.customer_id = :customer)
             ORDER BY c.id
               FOR UPDATE OF c
            """
        ),
        {"handover": handover_id, "statuses": list(statuses), "customer": customer_id},
    )
    return list(rows.mappings())


async def mark_items(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    customer_ids: Sequence[uuid.UUID],
    notes: Sequence[str | None],
    status: str | None,
) -> None:
    """Set an outcome note (and a status when given) on several items, in one statement."""
    await session.execute(
        text(
            """
            UPDATE handover_items AS hi
               SET outcome_note = m.note, status = COALESCE(CAST(:status AS text), hi.status)
              FROM unnest(CAST(:ids AS uuid[]), CAST(:notes AS text[])) AS m(customer_id, note)
             WHERE hi.handover_id = :handover AND hi.customer_id = m.customer_id
            """
        ),
        {
            "handover": handover_id,
            "ids": list(customer_ids),
            "notes": list(notes),
            "status": status,
        },
    )


async def moved_for_notice(
    session: AsyncSession, *, handover_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]
) -> list[RowMapping]:
    """What the notifications of these moved items say: the customer, its briefing, its new
    owner and its previous one (one statement)."""
    rows = await session.execute(
        text(
            """
            SELECT hi.customer_id, c.external_ref, c.name AS customer_name, c.tier_code AS tier,
                   hi.briefing, hi.moved_at,
                   n.id AS owner_id, n.name AS owner_name, n.email AS owner_email,
                   p.id AS previous_id, p.name AS previous_name, p.email AS previous_email
              FROM handover_items AS hi
              JOIN customers AS c ON c.id = hi.customer_id
              JOIN managers AS n ON n.id = hi.final_manager_id
              LEFT JOIN managers AS p ON p.id = hi.original_manager_id
             WHERE hi.handover_id = :handover AND hi.customer_id = ANY(CAST(:ids AS uuid[]))
             ORDER BY n.id, c.name, hi.customer_id
            """
        ),
        {"handover": handover_id, "ids": list(customer_ids)},
    )
    return list(rows.mappings())


async def set_item_notifications(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    customer_ids: Sequence[uuid.UUID],
    event_ids: Sequence[uuid.UUID | None],
    mailed: Sequence[bool],
    unreachable: str,
) -> None:
    """Tie each item's notification to its outbound event (and mail): pending until one of
    them gets through, or not sent at once (``unreachable``) when it has nowhere to go."""
    await session.execute(
        text(
            """
            UPDATE handover_items AS hi
               SET notification_event_id = m.event_id,
                   notification_status = CASE WHEN m.event_id IS NULL AND NOT m.mailed
                                              THEN 'not_sent' ELSE 'pending' END,
                   notification_error = CASE WHEN m.event_id IS NULL AND NOT m.mailed
                                             THEN CAST(:unreachable AS text) END,
                   notified_at = NULL
              FROM unnest(CAST(:ids AS uuid[]), CAST(:events AS uuid[]),
                          CAST(:mailed AS boolean[]))
                   AS m(customer_id, event_id, mailed)
             WHERE hi.handover_id = :handover AND hi.customer_id = m.customer_id
            """
        ),
        {
            "handover": handover_id,
            "ids": list(customer_ids),
            "events": list(event_ids),
            "mailed": list(mailed),
            "unreachable": unreachable,
        },
    )


async def set_owner_notifications(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    manager_ids: Sequence[uuid.UUID],
    event_ids: Sequence[uuid.UUID | None],
    mailed: Sequence[bool],
    unreachable: str,
) -> None:
    """Track the briefing sent to each new owner (the latest one, if a refusal sent another)."""
    await session.execute(
        text(
            """
            INSERT INTO handover_owner_notifications
                   (handover_id, manager_id, event_id, status, error)
            SELECT :handover, m.manager_id, m.event_id,
                   CASE WHEN m.event_id IS NULL AND NOT m.mailed THEN 'not_sent'
                        ELSE 'pending' END,
                   CASE WHEN m.event_id IS NULL AND NOT m.mailed
                        THEN CAST(:unreachable AS text) END
              FROM unnest(CAST(:managers AS uuid[]), CAST(:events AS uuid[]),
                          CAST(:mailed AS boolean[]))
                   AS m(manager_id, event_id, mailed)
            ON CONFLICT (handover_id, manager_id) DO UPDATE
               SET event_id = EXCLUDED.event_id, status = EXCLUDED.status,
                   error = EXCLUDED.error, notified_at = NULL
            """
        ),
        {
            "handover": handover_id,
            "managers": list(manager_ids),
            "events": list(event_ids),
            "mailed": list(mailed),
            "unreachable": unreachable,
        },
    )


# Pending notifications whose channels are settled: sent once a delivery of the event or the
# mail got through; not sent once neither has an attempt pending. Only settled ones are
# claimed, so ones still retrying never crowd the others out of the LIMIT. Claimed as a
# materialized CTE (a re-run LIMIT subquery may claim more rows than asked), rows locked by
# another worker skipped.
_SETTLE = """
    WITH p AS MATERIALIZED (
        SELECT n.handover_id, n.{key}, n.{event} AS event_id FROM {table} AS n
         WHERE n.{status} = 'pending'
           AND (EXISTS (SELECT 1 FROM webhook_deliveries AS d
                         WHERE d.event_id = n.{event} AND d.status = 'delivered')
                OR EXISTS (SELECT 1 FROM handover_emails AS m
                            WHERE m.handover_id = n.handover_id AND m.{key} = n.{key}
                              AND m.kind = '{kind}' AND m.status = 'sent')
                OR (NOT EXISTS (SELECT 1 FROM webhook_deliveries AS d
                                 WHERE d.event_id = n.{event} AND d.status = 'pending')
                    AND NOT EXISTS (SELECT 1 FROM handover_emails AS m
                                     WHERE m.handover_id = n.handover_id AND m.{key} = n.{key}
                                       AND m.kind = '{kind}' AND m.status = 'pending')))
         LIMIT :limit FOR UPDATE OF n SKIP LOCKED
    ), o AS (
        SELECT p.handover_id, p.{key},
               least((SELECT min(d.delivered_at) FROM webhook_deliveries AS d
                       WHERE d.event_id = p.event_id AND d.status = 'delivered'),
                     (SELECT min(m.sent_at) FROM handover_emails AS m
                       WHERE m.handover_id = p.handover_id AND m.{key} = p.{key}
                         AND m.kind = '{kind}' AND m.status = 'sent')) AS sent_at
          FROM p
    )
    UPDATE {table} AS t
       SET {status} = CASE WHEN o.sent_at IS NOT NULL THEN 'sent' ELSE 'not_sent' END,
           {error} = CASE WHEN o.sent_at IS NULL THEN 'delivery failed' END,
           notified_at = o.sent_at
      FROM o
     WHERE t.handover_id = o.handover_id AND t.{key} = o.{key}
    RETURNING t.handover_id
"""


_SETTLE_ITEMS = text(
    _SETTLE.format(
        key="customer_id",
        kind="customer_notification",
        event="notification_event_id",
        table="handover_items",
        status="notification_status",
        error="notification_error",
    )
)


_SETTLE_OWNERS = text(
    _SETTLE.format(
        key="manager_id",
        kind="owner_briefing",
        event="event_id",
        table="handover_owner_notifications",
        status="status",
        error="error",
    )
)


# A task ticks itself once every notification it stands for was delivered.
_TICK = """
    UPDATE handover_tasks AS t
       SET done = true, done_by = :actor, done_at = :at
     WHERE t.handover_id = ANY(CAST(:ids AS uuid[])) AND t.task = '{task}' AND NOT t.done
       AND EXISTS (SELECT 1 FROM {table} AS n
                    WHERE n.handover_id = t.handover_id AND n.{status} = 'sent')
       AND NOT EXISTS (SELECT 1 FROM {table} AS n
                        WHERE n.handover_id = t.handover_id
                          AND n.{status} IN ('pending', 'not_sent'))
"""


_TICK_CUSTOMERS = text(
    _TICK.format(task="customers_notified", table="handover_items", status="notification_status")
)


_TICK_TEAM = text(
    _TICK.format(task="team_informed", table="handover_owner_notifications", status="status")
)


async def settle_notifications(
    session: AsyncSession, *, limit: int, at: datetime, actor: str
) -> int:
    """Settle up to ``limit`` customer notifications and as many owner briefings whose
    deliveries are settled, then tick the checklist tasks they complete; returns the larger
    of the two counts (``limit``: there may be more)."""
    items = [r[0] for r in await session.execute(_SETTLE_ITEMS, {"limit": limit})]
    owners = [r[0] for r in await session.execute(_SETTLE_OWNERS, {"limit": limit})]
    params = {"at": at, "actor": actor}
    if items:
        await session.execute(_TICK_CUSTOMERS, {**params, "ids": sorted(set(items))})
    if owners:
        await session.execute(_TICK_TEAM, {**params, "ids": sorted(set(owners))})
    return max(len(items), len(owners))


async def refusal_count(session: AsyncSession, handover_id: uuid.UUID) -> int:
    """Items whose customer refused their new owner."""
    count = await session.scalar(
        select(func.count()).where(
            HandoverItem.handover_id == handover_id, HandoverItem.refused_at.is_not(None)
        )
    )
    return int(count or 0)
