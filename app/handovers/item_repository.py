"""SQL for a handover's scope and items: who is in scope, proposals, overrides and briefings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    Customer,
    HandoverItem,
)
from app.db.rows import row_as, rows_as
from app.handovers.repository import PENDING_ITEM_STATUSES
from app.vocabulary import HandoverItemStatus, NotificationStatus

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


@dataclass(frozen=True, slots=True)
class ItemRow:
    """A handover item with its customer's name, tier and current owner."""

    handover_id: uuid.UUID
    customer_id: uuid.UUID
    original_manager_id: uuid.UUID | None
    status: HandoverItemStatus
    proposed_manager_id: uuid.UUID | None
    score: Decimal | None
    reasons: list[str]
    explanation: Any
    override_manager_id: uuid.UUID | None
    override_reason: str | None
    override_forced: bool
    override_by: str | None
    override_at: datetime | None
    final_manager_id: uuid.UUID | None
    moved_at: datetime | None
    briefing: Any
    briefing_by: str | None
    briefing_at: datetime | None
    notification_status: NotificationStatus | None
    notified_at: datetime | None
    notification_event_id: uuid.UUID | None
    notification_error: str | None
    refused_at: datetime | None
    refused_manager_id: uuid.UUID | None
    outcome_note: str | None
    customer_name: str
    tier: str
    current_manager_id: uuid.UUID | None


async def get_item(
    session: AsyncSession, handover_id: uuid.UUID, customer_id: uuid.UUID
) -> ItemRow | None:
    """One item with its customer's name, tier and current owner."""
    stmt = (
        select(*_ITEM_COLUMNS)
        .join(Customer, Customer.id == HandoverItem.customer_id)
        .where(HandoverItem.handover_id == handover_id, HandoverItem.customer_id == customer_id)
    )
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else row_as(ItemRow, row)


async def list_items(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    statuses: Sequence[str],
    after: uuid.UUID | None,
    limit: int,
) -> list[ItemRow]:
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
    return rows_as(ItemRow, (await session.execute(stmt)).mappings())


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


async def forced_override_customers(
    session: AsyncSession, *, handover_id: uuid.UUID, moved: bool = True
) -> list[uuid.UUID]:
    """Customers of the handover moved (``moved``; otherwise planned) to an override forced
    past hard rules."""
    rows = await session.scalars(
        text(
            "SELECT customer_id FROM handover_items WHERE handover_id = :handover "
            "AND override_forced AND (status = 'moved' OR NOT :moved)"
        ),
        {"handover": handover_id, "moved": moved},
    )
    return list(rows.all())
