"""The ownership ledger: every change of owner goes through ``move_customers``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import RowMapping, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Assignment
from app.webhooks import outbox

# The customer rows are updated first: that takes their row locks, so a concurrent move of
# the same customer waits and then reconciles the ledger against the committed owner. The
# moved set comes back as two arrays in one row (no per-row result handling at 100k rows) and
# drives the next statements, so none of them re-reads customers.
_UPDATE_CUSTOMERS = text(
    """
    WITH moved AS (
        UPDATE customers AS c
           SET manager_id = i.manager_id, version = c.version + 1, updated_at = :at,
               owner_since = CASE WHEN i.manager_id IS NULL THEN NULL
                                  ELSE CAST(:at AS timestamptz) END
          FROM unnest(CAST(:ids AS uuid[]), CAST(:managers AS uuid[])) AS i(id, manager_id)
         WHERE c.id = i.id AND c.manager_id IS DISTINCT FROM i.manager_id
        RETURNING c.id, c.manager_id
    )
    SELECT array_agg(id), array_agg(manager_id) FROM moved
    """
)
_CLOSE_ROWS = text(
    """
    UPDATE assignments AS a
       SET ended_at = :at
      FROM unnest(CAST(:ids AS uuid[])) AS i(id)
     WHERE a.customer_id = i.id AND a.ended_at IS NULL
    """
)
# The same, naming the previous owners (for outbound events).
_CLOSE_ROWS_RETURNING = text(
    """
    WITH closed AS (
        UPDATE assignments AS a
           SET ended_at = :at
          FROM unnest(CAST(:ids AS uuid[])) AS i(id)
         WHERE a.customer_id = i.id AND a.ended_at IS NULL
        RETURNING a.customer_id, a.manager_id
    )
    SELECT array_agg(customer_id), array_agg(manager_id) FROM closed
    """
)
_OPEN_ROWS = text(
    """
    INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor, handover_id, note)
    SELECT i.id, i.manager_id, :at, :reason, :actor, :handover_id, :note
      FROM unnest(CAST(:ids AS uuid[]), CAST(:managers AS uuid[])) AS i(id, manager_id)
     WHERE i.manager_id IS NOT NULL
    """
)


async def move_customers(
    session: AsyncSession,
    *,
    customer_ids: Sequence[uuid.UUID],
    manager_ids: Sequence[uuid.UUID | None],
    reason: str,
    actor: str,
    at: datetime,
    handover_id: uuid.UUID | None = None,
    note: str | None = None,
) -> int:
    """Set each customer's owner (None = pool) and write the ledger, set-based.

    Three statements whatever the number of customers: update the owners (which locks the
    rows of the customers that really move), close their open ledger rows, open rows for the
    new owners; and, when someone subscribes to them, one outbound ``customer.assigned`` /
    ``customer.unassigned`` event per moved customer. Customers already with the requested
    owner are left alone. Returns how many customers changed owner.
    """
    if len(customer_ids) != len(manager_ids):
        raise ValueError("customer_ids and manager_ids differ in length")
    if not customer_ids:
        return 0
    moved_ids, moved_to = (
        await session.execute(
            _UPDATE_CUSTOMERS,
            {"ids": list(customer_ids), "managers": list(manager_ids), "at": at},
        )
    ).one()
    if not moved_ids:
        return 0
    events = await outbox.wants_ownership_events(session)
    previous: dict[uuid.UUID, uuid.UUID] = {}
    if events:
        closed = (await session.execute(_CLOSE_ROWS_RETURNING, {"ids": moved_ids, "at": at})).one()
        previous = dict(zip(closed[0] or [], closed[1] or [], strict=True))
    else:
        await session.execute(_CLOSE_ROWS, {"ids": moved_ids, "at": at})
    await session.execute(
        _OPEN_ROWS,
        {
            "ids": moved_ids,
            "managers": moved_to,
            "at": at,
            "reason": reason,
            "actor": actor,
            "handover_id": handover_id,
            "note": note,
        },
    )
    if events:
        await outbox.emit_ownership_changes(
            session,
            [
                (customer, previous.get(customer), owner)
                for customer, owner in zip(moved_ids, moved_to, strict=True)
            ],
            reason=reason,
            actor=actor,
            at=at,
            handover_id=handover_id,
            note=note,
        )
    return len(moved_ids)


async def history(
    session: AsyncSession, customer_id: uuid.UUID, *, after: int | None, limit: int
) -> list[RowMapping]:
    """Ledger rows of one customer, newest first."""
    stmt = (
        select(*Assignment.__table__.c)
        .where(Assignment.customer_id == customer_id)
        .order_by(Assignment.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(Assignment.id < after)
    return list((await session.execute(stmt)).mappings())


async def owner_at(
    session: AsyncSession, customer_id: uuid.UUID, at: datetime
) -> RowMapping | None:
    """The ledger row covering instant ``at``, if the customer had an owner then."""
    stmt = (
        select(*Assignment.__table__.c)
        .where(
            Assignment.customer_id == customer_id,
            Assignment.started_at <= at,
            (Assignment.ended_at.is_(None)) | (Assignment.ended_at > at),
        )
        .order_by(Assignment.started_at.desc(), Assignment.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).mappings().first()
