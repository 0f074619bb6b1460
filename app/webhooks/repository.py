"""SQL both webhook directions share: the secret rotation and the pruning of old logs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import WebhookSource, WebhookSubscription


async def set_secret(
    session: AsyncSession,
    model: type[WebhookSource] | type[WebhookSubscription],
    row_id: uuid.UUID,
    values: dict[str, Any],
) -> RowMapping:
    """Write the secret columns of one source or subscription; the whole row after it."""
    statement = (
        update(model)
        .where(model.id == row_id)
        .values(**values)
        .returning(*model.__table__.c)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).mappings().one()


_OUTBOUND = text(
    """
    DELETE FROM webhook_events WHERE id IN (
        SELECT e.id FROM webhook_events AS e
         WHERE e.created_at < :cutoff
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries AS d
                            WHERE d.event_id = e.id AND d.status = 'pending')
         ORDER BY e.created_at
         LIMIT :batch)
    """
)
_INBOUND = text(
    """
    DELETE FROM webhook_inbound_events WHERE id IN (
        SELECT id FROM webhook_inbound_events
         WHERE received_at < :cutoff AND status IN ('processed', 'ignored')
         ORDER BY received_at
         LIMIT :batch)
    """
)


async def prune_outbound(session: AsyncSession, *, cutoff: datetime, batch: int) -> int:
    """Delete one batch of outbound events past ``cutoff`` with nothing pending; the count."""
    result = await session.execute(_OUTBOUND, {"cutoff": cutoff, "batch": batch})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def prune_inbound(session: AsyncSession, *, cutoff: datetime, batch: int) -> int:
    """Delete one batch of processed or ignored inbound events past ``cutoff``; the count."""
    result = await session.execute(_INBOUND, {"cutoff": cutoff, "batch": batch})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
