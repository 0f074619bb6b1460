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

from app.db.session import SessionFactory, session_scope
from app.webhooks import repository

BATCH = 5_000


async def prune(factory: SessionFactory, *, cutoff: datetime, batch: int = BATCH) -> int:
    """Delete what is past retention (older than ``cutoff``); returns the number of events."""
    deleted = 0
    for prune_batch in (repository.prune_outbound, repository.prune_inbound):
        while True:
            async with session_scope(factory) as session:
                count = await prune_batch(session, cutoff=cutoff, batch=batch)
            deleted += count
            if count < batch:
                break
    return deleted
