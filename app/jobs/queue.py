"""Enqueue a job on the session's own connection (pgqueuer talks asyncpg natively), so the job
exists exactly when the change that needs it commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from pgqueuer import AsyncpgDriver, Queries
from sqlalchemy.ext.asyncio import AsyncSession

EXECUTE_HANDOVER = "execute_handover"
DELIVER_WEBHOOKS = "deliver_webhooks"
PROCESS_INBOUND_WEBHOOK = "process_inbound_webhook"
SWEEP = "sweep_due_work"


async def _queries(session: AsyncSession) -> Queries:
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    return Queries(AsyncpgDriver(raw))


async def enqueue(
    session: AsyncSession,
    entrypoint: str,
    payload: str,
    *,
    execute_after: timedelta | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Enqueue a job in the session's transaction (it exists only if the transaction commits)."""
    await (await _queries(session)).enqueue(
        entrypoint,
        payload.encode(),
        execute_after=execute_after,
        dedupe_key=dedupe_key,
        on_conflict="skip",
    )


async def enqueue_many(session: AsyncSession, entrypoint: str, payloads: Sequence[str]) -> None:
    """Enqueue one job per payload in one statement (a webhook batch is up to 1000 events),
    in the session's transaction like ``enqueue``."""
    if not payloads:
        return
    await (await _queries(session)).enqueue(
        [entrypoint] * len(payloads),
        [p.encode() for p in payloads],
        priority=[0] * len(payloads),
        on_conflict="skip",
    )
