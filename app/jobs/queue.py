"""Enqueue a job on the session's own connection (pgqueuer talks asyncpg natively), so the job
exists exactly when the change that needs it commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pgqueuer import AsyncpgDriver, Queries
from sqlalchemy.ext.asyncio import AsyncSession

EXECUTE_HANDOVER = "execute_handover"
DELIVER_WEBHOOKS = "deliver_webhooks"
PROCESS_INBOUND_WEBHOOK = "process_inbound_webhook"
SWEEP = "sweep_due_work"


async def _driver(session: AsyncSession) -> Any:
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def _queries(session: AsyncSession) -> Queries:
    return Queries(AsyncpgDriver(await _driver(session)))


async def enqueue(
    session: AsyncSession,
    entrypoint: str,
    payload: str,
    *,
    execute_at: datetime | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Enqueue a job in the session's transaction (it exists only if the transaction commits),
    to run at ``execute_at`` (now when None) on the database's clock: the queue counts a
    job's delay from the transaction's start, so the delay is taken from that instant too
    (from the process's clock the job would come due early by the transaction's age)."""
    raw = await _driver(session)
    execute_after = None
    if execute_at is not None:
        started: datetime = await raw.fetchval("SELECT now()")
        execute_after = max(execute_at - started, timedelta(0))
    await Queries(AsyncpgDriver(raw)).enqueue(
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
