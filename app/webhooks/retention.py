"""How long the webhook logs are kept.

Outbound events (with their deliveries and attempts) and inbound events are the logs of
traffic with other systems, not Baton's records: the ownership ledger and the audit trail
are never pruned. After ``webhooks_retention_days`` the worker's sweep deletes

- outbound events none of whose deliveries is still pending (delivered, or failed and not
  redelivered within the retention), with their deliveries and attempts;
- inbound events that were processed or ignored. Failed ones stay until someone retries
  them: they are changes from a CRM that Baton has not applied.

Deletes go in batches, each its own short transaction, so a first run over a large backlog
never holds locks for long.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from app.db.session import SessionFactory, session_scope

BATCH = 5_000

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


async def prune(factory: SessionFactory, *, cutoff: datetime, batch: int = BATCH) -> int:
    """Delete what is past retention (older than ``cutoff``); returns the number of events."""
    deleted = 0
    for statement in (_OUTBOUND, _INBOUND):
        while True:
            async with session_scope(factory) as session:
                result = await session.execute(statement, {"cutoff": cutoff, "batch": batch})
            count = int(result.rowcount or 0)  # type: ignore[attr-defined]
            deleted += count
            if count < batch:
                break
    return deleted
