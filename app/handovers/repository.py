"""SQL for handovers, their items, checklist and audit trail. Bulk work is set-based."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    HANDOVER_OPEN_STATES,
    HANDOVER_TASKS,
    Customer,
    Handover,
    HandoverEvent,
    HandoverFeedback,
    HandoverItem,
    HandoverTask,
    Manager,
)

PENDING_ITEM_STATUSES = ("pending", "proposed", "overridden", "unplaced")


# -- handovers -----------------------------------------------------------------------------------
async def get(
    session: AsyncSession, handover_id: uuid.UUID, *, lock: bool = False
) -> RowMapping | None:
    """One handover row; ``lock`` takes its row lock (serialises every action on it)."""
    stmt = select(*Handover.__table__.c).where(Handover.id == handover_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).mappings().first()


async def open_for_manager(session: AsyncSession, manager_id: uuid.UUID) -> uuid.UUID | None:
    """The open handover of this manager, if any."""
    return await session.scalar(
        select(Handover.id).where(
            Handover.from_manager_id == manager_id,
            Handover.state.in_(HANDOVER_OPEN_STATES),
        )
    )


async def list_page(
    session: AsyncSession,
    *,
    filters: list[ColumnElement[bool]],
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[RowMapping]:
    """Handovers newest first (created_at, id), after the given key."""
    stmt = (
        select(*Handover.__table__.c)
        .where(*filters)
        .order_by(Handover.created_at.desc(), Handover.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(func.row(Handover.created_at, Handover.id) < func.row(*after))
    return list((await session.execute(stmt)).mappings())


async def insert_handover(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID:
    """Add a handover with its checklist tasks; returns the id."""
    handover_id = await session.scalar(insert(Handover).values(**values).returning(Handover.id))
    assert handover_id is not None
    await session.execute(
        insert(HandoverTask), [{"handover_id": handover_id, "task": t} for t in HANDOVER_TASKS]
    )
    return handover_id


async def update_handover(
    session: AsyncSession, handover_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Change some fields and bump the version."""
    await session.execute(
        update(Handover)
        .where(Handover.id == handover_id)
        .values(**values, version=Handover.version + 1, updated_at=func.now())
    )


async def add_event(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    action: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit entry."""
    await session.execute(
        insert(HandoverEvent).values(
            handover_id=handover_id,
            action=action,
            from_state=from_state,
            to_state=to_state,
            actor=actor,
            at=at,
            detail=detail,
        )
    )


async def events_for(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[RowMapping]]:
    """Audit entries of several handovers, oldest first."""
    rows = await session.execute(
        select(*HandoverEvent.__table__.c)
        .where(HandoverEvent.handover_id.in_(ids))
        .order_by(HandoverEvent.handover_id, HandoverEvent.id)
    )
    out: dict[uuid.UUID, list[RowMapping]] = defaultdict(list)
    for row in rows.mappings():
        out[row["handover_id"]].append(row)
    return out


async def tasks_for(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[RowMapping]]:
    """Checklist tasks of several handovers, in checklist order."""
    order = {t: i for i, t in enumerate(HANDOVER_TASKS)}
    rows = await session.execute(
        select(*HandoverTask.__table__.c).where(HandoverTask.handover_id.in_(ids))
    )
    out: dict[uuid.UUID, list[RowMapping]] = defaultdict(list)
    for row in sorted(rows.mappings(), key=lambda r: order[r["task"]]):
        out[row["handover_id"]].append(row)
    return out


async def counts_for(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Items per status, with ``total`` and ``briefed``, for several handovers."""
    rows = await session.execute(
        select(
            HandoverItem.handover_id,
            HandoverItem.status,
            func.count(),
            func.count(HandoverItem.briefing),
        )
        .where(HandoverItem.handover_id.in_(ids))
        .group_by(HandoverItem.handover_id, HandoverItem.status)
    )
    out: dict[uuid.UUID, dict[str, int]] = {i: {"total": 0, "briefed": 0} for i in ids}
    for handover_id, status, count, briefed in rows:
        counts = out[handover_id]
        counts[status] = int(count)
        counts["total"] += int(count)
        counts["briefed"] += int(briefed)
    return out


async def set_task(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    task: str,
    done: bool,
    actor: str,
    at: datetime,
    note: str | None,
) -> None:
    """Mark a checklist task done (who, when) or not done."""
    await session.execute(
        update(HandoverTask)
        .where(HandoverTask.handover_id == handover_id, HandoverTask.task == task)
        .values(
            done=done,
            done_by=actor if done else None,
            done_at=at if done else None,
            note=note,
        )
    )


async def set_manager_status(session: AsyncSession, manager_id: uuid.UUID, status: str) -> None:
    """Change a manager's status (departing, departed, on_leave, back to active)."""
    await session.execute(
        update(Manager)
        .where(Manager.id == manager_id, Manager.status != status)
        .values(status=status, version=Manager.version + 1, updated_at=func.now())
    )


# -- scope and items -----------------------------------------------------------------------------
_SCOPE = """
    c.manager_id = :manager AND c.status = 'active'
    AND (cardinality(CAST(:tiers AS text[])) = 0 OR c.tier_code = ANY(CAST(:tiers AS text[])))
    AND (cardinality(CAST(:ids AS uuid[])) = 0 OR c.id = ANY(CAST(:ids AS uuid[])))
"""


def _scope_params(
    manager_id: uuid.UUID, tiers: Sequence[str], customer_ids: Sequence[uuid.UUID]
) -> dict[str, Any]:
    return {"manager": manager_id, "tiers": list(tiers), "ids": list(customer_ids)}


async def customers_in_scope(
    session: AsyncSession,
    *,
    manager_id: uuid.UUID,
    tiers: Sequence[str],
    customer_ids: Sequence[uuid.UUID],
) -> list[uuid.UUID]:
    """The manager's active customers matching the scope."""
    rows = await session.execute(
        text(f"SELECT c.id FROM customers AS c WHERE {_SCOPE} ORDER BY c.id"),
        _scope_params(manager_id, tiers, customer_ids),
    )
    return list(rows.scalars())


async def add_items_in_scope(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    manager_id: uuid.UUID,
    tiers: Sequence[str],
    customer_ids: Sequence[uuid.UUID],
) -> int:
    """Add an item for each customer in scope that has none yet (one INSERT … SELECT)."""
    result = await session.execute(
        text(
            f"""
            INSERT INTO handover_items (handover_id, customer_id, original_manager_id, status)
            SELECT :handover, c.id, c.manager_id, 'pending' FROM customers AS c WHERE {_SCOPE}
            ON CONFLICT DO NOTHING
            """
        ),
        {"handover": handover_id, **_scope_params(manager_id, tiers, customer_ids)},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def drop_items_gone(
    session: AsyncSession, *, handover_id: uuid.UUID, owners: Sequence[uuid.UUID]
) -> int:
    """Remove not-yet-executed items whose customer left the handover's owners (moved by
    someone else, or churned) since they were added."""
    result = await session.execute(
        text(
            """
            DELETE FROM handover_items AS hi
             USING customers AS c
             WHERE hi.handover_id = :handover AND c.id = hi.customer_id
               AND hi.status IN ('pending', 'proposed', 'overridden', 'unplaced')
               AND (c.status <> 'active' OR c.manager_id IS NULL
                    OR NOT c.manager_id = ANY(CAST(:owners AS uuid[])))
            """
        ),
        {"handover": handover_id, "owners": list(owners)},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def item_customers_owned_by(
    session: AsyncSession, *, handover_id: uuid.UUID, owner_id: uuid.UUID
) -> list[uuid.UUID]:
    """Customers of not-yet-executed items currently owned by ``owner_id``."""
    rows = await session.execute(
        text(
            """
            SELECT hi.customer_id FROM handover_items AS hi
              JOIN customers AS c ON c.id = hi.customer_id
             WHERE hi.handover_id = :handover AND c.manager_id = :owner
               AND hi.status IN ('pending', 'proposed', 'overridden', 'unplaced')
             ORDER BY hi.customer_id
            """
        ),
        {"handover": handover_id, "owner": owner_id},
    )
    return list(rows.scalars())


async def pending_item_customers(session: AsyncSession, handover_id: uuid.UUID) -> list[uuid.UUID]:
    """Customers of the items not executed yet, by id."""
    rows = await session.execute(
        select(HandoverItem.customer_id)
        .where(
            HandoverItem.handover_id == handover_id,
            HandoverItem.status.in_(PENDING_ITEM_STATUSES),
        )
        .order_by(HandoverItem.customer_id)
    )
    return list(rows.scalars())


async def write_proposals(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    customer_ids: Sequence[uuid.UUID],
    manager_ids: Sequence[uuid.UUID | None],
    scores: Sequence[float],
    reasons: Sequence[str],
    explanations: Sequence[str | None],
) -> None:
    """Store the engine's proposal per item in one statement; overrides are kept, and the
    status follows: overridden, proposed, or unplaced (no eligible owner).

    ``reasons`` and ``explanations`` are JSON texts (arrays of arrays do not unnest)."""
    await session.execute(
        text(
            """
            UPDATE handover_items AS hi
               SET proposed_manager_id = p.manager_id,
                   score = p.score,
                   reasons = ARRAY(SELECT jsonb_array_elements_text(CAST(p.reasons AS jsonb))),
                   explanation = CAST(p.explanation AS jsonb),
                   status = CASE
                       WHEN hi.override_manager_id IS NOT NULL THEN 'overridden'
                       WHEN p.manager_id IS NULL THEN 'unplaced'
                       ELSE 'proposed' END
              FROM unnest(CAST(:ids AS uuid[]), CAST(:managers AS uuid[]),
                          CAST(:scores AS float8[]), CAST(:reasons AS text[]),
                          CAST(:explanations AS text[]))
                   AS p(customer_id, manager_id, score, reasons, explanation)
             WHERE hi.handover_id = :handover AND hi.customer_id = p.customer_id
            """
        ),
        {
            "handover": handover_id,
            "ids": list(customer_ids),
            "managers": list(manager_ids),
            "scores": list(scores),
            "reasons": list(reasons),
            "explanations": list(explanations),
        },
    )


_ITEM_COLUMNS = (
    *HandoverItem.__table__.c,
    Customer.name.label("customer_name"),
    Customer.tier_code.label("tier"),
    Customer.manager_id.label("current_manager_id"),
)


async def get_item(
    session: AsyncSession, handover_id: uuid.UUID, customer_id: uuid.UUID
) -> RowMapping | None:
    """One item with its customer's name, tier and current owner."""
    stmt = (
        select(*_ITEM_COLUMNS)
        .join(Customer, Customer.id == HandoverItem.customer_id)
        .where(HandoverItem.handover_id == handover_id, HandoverItem.customer_id == customer_id)
    )
    return (await session.execute(stmt)).mappings().first()


async def list_items(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    statuses: Sequence[str],
    after: uuid.UUID | None,
    limit: int,
) -> list[RowMapping]:
    """Items by customer id, optionally of some statuses."""
    stmt = (
        select(*_ITEM_COLUMNS)
        .join(Customer, Customer.id == HandoverItem.customer_id)
        .where(HandoverItem.handover_id == handover_id)
        .order_by(HandoverItem.customer_id)
        .limit(limit)
    )
    if statuses:
        stmt = stmt.where(HandoverItem.status.in_(statuses))
    if after is not None:
        stmt = stmt.where(HandoverItem.customer_id > after)
    return list((await session.execute(stmt)).mappings())


async def update_item(
    session: AsyncSession, handover_id: uuid.UUID, customer_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Change some fields of one item."""
    await session.execute(
        update(HandoverItem)
        .where(HandoverItem.handover_id == handover_id, HandoverItem.customer_id == customer_id)
        .values(**values)
    )


async def top_tier_without_briefing(
    session: AsyncSession, handover_id: uuid.UUID
) -> list[uuid.UUID]:
    """Customers of the most important tier (lowest rank) whose item has no briefing."""
    rows = await session.execute(
        text(
            """
            SELECT hi.customer_id FROM handover_items AS hi
              JOIN customers AS c ON c.id = hi.customer_id
              JOIN tiers AS t ON t.code = c.tier_code
             WHERE hi.handover_id = :handover AND hi.briefing IS NULL
               AND t.rank = (SELECT min(rank) FROM tiers)
             ORDER BY hi.customer_id
            """
        ),
        {"handover": handover_id},
    )
    return list(rows.scalars())


async def over_transfer_limit(
    session: AsyncSession, *, handover_id: uuid.UUID, since: datetime, limit: int
) -> list[tuple[uuid.UUID, int]]:
    """Customers of this handover (not forced by an override) already moved by ``limit`` or
    more handovers since ``since``; another handover would exceed the limit."""
    rows = await session.execute(
        text(
            """
            SELECT hi.customer_id, count(*) AS transfers FROM handover_items AS hi
              JOIN assignments AS a ON a.customer_id = hi.customer_id
             WHERE hi.handover_id = :handover AND NOT hi.override_forced
               AND hi.status IN ('proposed', 'overridden')
               AND a.reason = 'handover' AND a.started_at >= :since
             GROUP BY hi.customer_id HAVING count(*) >= :limit
             ORDER BY hi.customer_id
            """
        ),
        {"handover": handover_id, "since": since, "limit": limit},
    )
    return [(r[0], int(r[1])) for r in rows]


# -- execution -----------------------------------------------------------------------------------
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


async def due_handovers(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Approved handovers whose effective time has come, oldest first."""
    rows = await session.execute(
        select(Handover.id)
        .where(
            Handover.state == "approved",
            Handover.effective_at.is_not(None),
            Handover.effective_at <= now,
        )
        .order_by(Handover.effective_at)
    )
    return list(rows.scalars())


async def due_cover_returns(session: AsyncSession, *, now: datetime) -> list[uuid.UUID]:
    """Completed leave handovers whose cover period has ended and not been returned yet."""
    rows = await session.execute(
        select(Handover.id)
        .where(
            Handover.state == "completed",
            Handover.until.is_not(None),
            Handover.until <= now,
            Handover.cover_returned_at.is_(None),
        )
        .order_by(Handover.until)
    )
    return list(rows.scalars())


# -- outcome -------------------------------------------------------------------------------------
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
    return {manager_id: int(n) for manager_id, n in rows.all()}


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


async def refusal_count(session: AsyncSession, handover_id: uuid.UUID) -> int:
    """Items whose customer refused their new owner."""
    count = await session.scalar(
        select(func.count()).where(
            HandoverItem.handover_id == handover_id, HandoverItem.refused_at.is_not(None)
        )
    )
    return int(count or 0)


async def lock_unavailable_managers(
    session: AsyncSession, manager_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Share-lock these managers' rows (none can start leaving until the transaction ends);
    return those no longer active."""
    rows = await session.execute(
        text(
            "SELECT id, status FROM managers WHERE id = ANY(CAST(:ids AS uuid[])) "
            "ORDER BY id FOR SHARE"
        ),
        {"ids": list(manager_ids)},
    )
    return {manager_id for manager_id, status in rows.all() if status != "active"}


async def forced_override_customers(
    session: AsyncSession, *, handover_id: uuid.UUID
) -> list[uuid.UUID]:
    """Customers of the handover moved to an override forced past hard rules."""
    rows = await session.scalars(
        text(
            "SELECT customer_id FROM handover_items WHERE handover_id = :handover "
            "AND override_forced AND status = 'moved'"
        ),
        {"handover": handover_id},
    )
    return list(rows.all())
