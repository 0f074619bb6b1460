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
# the same customer waits and then reconciles the ledger against the committed owner.
_UPDATE_CUSTOMERS = text(
    """
    UPDATE customers AS c
       SET manager_id = i.manager_id, version = c.version + 1, updated_at = :at,
           owner_since = CASE WHEN i.manager_id IS NULL THEN NULL ELSE CAST(:at AS timestamptz) END
      FROM unnest(CAST(:ids AS uuid[]), CAST(:managers AS uuid[])) AS i(id, manager_id)
     WHERE c.id = i.id AND c.manager_id IS DISTINCT FROM i.manager_id
    RETURNING c.id, c.manager_id
    """
)
# Driven by the customers the first statement really moved, so no statement re-reads them.
_CLOSE_ROWS = text(
    """
    UPDATE assignments AS a
       SET ended_at = :at
      FROM unnest(CAST(:ids AS uuid[])) AS i(id)
     WHERE a.customer_id = i.id AND a.ended_at IS NULL
    RETURNING a.customer_id, a.manager_id
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

    Four statements whatever the number of customers: update the owners (which locks the
    rows of the customers that really move), close their open ledger rows, open rows for the
    new owners, and write one outbound
    ``customer.assigned``/``customer.unassigned`` event per moved customer to the outbox.
    Customers already with the requested owner are left alone. Returns how many customers
    changed owner.
    """
    if len(customer_ids) != len(manager_ids):
        raise ValueError("customer_ids and manager_ids differ in length")
    if not customer_ids:
        return 0
    moved = (
        await session.execute(
            _UPDATE_CUSTOMERS,
            {"ids": list(customer_ids), "managers": list(manager_ids), "at": at},
        )
    ).all()
    if not moved:
        return 0
    moved_ids = [customer for customer, _ in moved]
    # The closed ledger rows name the previous owners (for the outbound events).
    previous = dict((await session.execute(_CLOSE_ROWS, {"ids": moved_ids, "at": at})).all())
    await session.execute(
        _OPEN_ROWS,
        {
            "ids": moved_ids,
            "managers": [owner for _, owner in moved],
            "at": at,
            "reason": reason,
            "actor": actor,
            "handover_id": handover_id,
            "note": note,
        },
    )
    await outbox.emit_ownership_changes(
        session,
        [(customer, previous.get(customer), owner) for customer, owner in moved],
        reason=reason,
        actor=actor,
        at=at,
        handover_id=handover_id,
        note=note,
    )
    return len(moved)


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
