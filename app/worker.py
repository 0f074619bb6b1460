"""Background work on a Postgres-backed job queue (pgqueuer).

pgqueuer talks asyncpg natively, so a job is enqueued on the request's own connection, inside
the same transaction as the change that needs it: the job exists exactly when the change
committed. Baton's own tables stay the source of truth (an approved handover with a due
``effective_at``, an outbox row, a notification awaiting its delivery); a sweep every minute
finds due work that no job announced, so nothing is lost if a job is.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
from pgqueuer import AsyncpgDriver, PgQueuer, Queries
from pgqueuer.executors import DatabaseRetryEntrypointExecutor
from pgqueuer.models import Job, Schedule
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.session import (
    SessionFactory,
    asyncpg_dsn,
    create_engine,
    create_session_factory,
    session_scope,
)
from app.errors import InvalidTransition
from app.settings import Settings, get_settings

log = logging.getLogger("baton.worker")

EXECUTE_HANDOVER = "execute_handover"
DELIVER_WEBHOOKS = "deliver_webhooks"
PROCESS_INBOUND_WEBHOOK = "process_inbound_webhook"
SWEEP = "sweep_due_work"

Sweep = Callable[[SessionFactory, datetime], Awaitable[int]]


async def enqueue(
    session: AsyncSession,
    entrypoint: str,
    payload: str,
    *,
    execute_after: timedelta | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Enqueue a job in the session's transaction (it exists only if the transaction commits)."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
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
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    await Queries(AsyncpgDriver(raw)).enqueue(
        [entrypoint] * len(payloads),
        [p.encode() for p in payloads],
        priority=[0] * len(payloads),
        on_conflict="skip",
    )


async def _execute_due_handovers(factory: SessionFactory, now: datetime) -> int:
    from app.handovers import service as handovers

    async with session_scope(factory) as session:
        due = await handovers.due_handover_ids(session, now=now)
    for handover_id in due:
        await _execute_handover(factory, handover_id)
    return len(due)


async def _execute_handover(factory: SessionFactory, handover_id: uuid.UUID) -> None:
    from app.handovers import service as handovers

    async with session_scope(factory) as session:
        await handovers.execute_handover(session, handover_id=handover_id, actor="scheduler")
    log.info("handover_executed", extra={"handover_id": str(handover_id)})


async def _return_due_covers(factory: SessionFactory, now: datetime) -> int:
    from app.handovers import service as handovers

    async with session_scope(factory) as session:
        due = await handovers.due_cover_returns(session, now=now)
    for handover_id in due:
        async with session_scope(factory) as session:
            await handovers.return_cover(session, handover_id=handover_id, actor="scheduler")
    return len(due)


async def _send_notification_emails(factory: SessionFactory, now: datetime) -> int:
    from app.handovers import emails

    settings = get_settings()
    if settings.smtp_url is None:
        return 0
    smtp = emails.Smtp.from_url(settings.smtp_url.get_secret_value(), sender=settings.smtp_from)
    total = 0
    while True:
        async with session_scope(factory) as session:
            sent = await emails.send_due(session, smtp=smtp, now=now)
        total += sent
        if sent < emails.BATCH:
            return total


async def _settle_notifications(factory: SessionFactory, now: datetime) -> int:
    from app.handovers import notifications

    total = 0
    while True:  # one transaction per batch: a 100 000-customer handover is 20 of them
        async with session_scope(factory) as session:
            settled = await notifications.settle(session, at=now)
        total += settled
        if settled < notifications.SETTLE_BATCH:
            return total


async def _deliver_webhooks(factory: SessionFactory, now: datetime) -> int:
    from app.webhooks.outbound.dispatcher import drain

    return await drain(factory)


async def _process_inbound_webhooks(factory: SessionFactory, now: datetime) -> int:
    from app.webhooks.inbound.processing import process_stale

    return await process_stale(factory, now=now)


async def _forget_expired_idempotency_keys(factory: SessionFactory, now: datetime) -> int:
    from app.api.idempotency import delete_expired

    async with session_scope(factory) as session:
        return await delete_expired(session)


async def _fold_manager_loads(factory: SessionFactory, now: datetime) -> int:
    from app.managers.repository import fold_loads

    async with session_scope(factory) as session:
        return await fold_loads(session)


async def _prune_webhook_logs(factory: SessionFactory, now: datetime) -> int:
    from app.webhooks.retention import prune

    return await prune(factory, cutoff=now - timedelta(days=get_settings().webhooks_retention_days))


SWEEPS: list[Sweep] = [
    _execute_due_handovers,
    _return_due_covers,
    _deliver_webhooks,
    _send_notification_emails,
    _settle_notifications,
    _process_inbound_webhooks,
    _forget_expired_idempotency_keys,
    _prune_webhook_logs,
    _fold_manager_loads,
]


async def run_due_work(factory: SessionFactory, *, now: datetime | None = None) -> dict[str, int]:
    """Run every sweep once; a failing sweep is logged and does not stop the others."""
    now = now or datetime.now(UTC)
    done: dict[str, int] = {}
    for sweep in SWEEPS:
        try:
            done[sweep.__name__.lstrip("_")] = await sweep(factory, now)
        except Exception:
            log.exception("sweep_failed", extra={"sweep": sweep.__name__})
    return done


def build_queue(connection: asyncpg.Connection, factory: SessionFactory) -> PgQueuer:
    """The pgqueuer application: job entrypoints and the minute sweep."""
    pgq = PgQueuer.from_asyncpg_connection(connection)

    @pgq.entrypoint(
        EXECUTE_HANDOVER,
        executor_factory=lambda params: DatabaseRetryEntrypointExecutor(
            parameters=params, max_attempts=5
        ),
    )
    async def execute_handover(job: Job) -> None:
        assert job.payload is not None
        try:
            await _execute_handover(factory, uuid.UUID(job.payload.decode()))
        except InvalidTransition:
            # Cancelled or already done since it was scheduled: nothing left to do.
            log.info("handover_job_skipped", extra={"handover_id": job.payload.decode()})

    @pgq.entrypoint(DELIVER_WEBHOOKS)
    async def deliver_webhooks(job: Job) -> None:
        from app.webhooks.outbound.dispatcher import drain_and_reschedule

        await drain_and_reschedule(factory)

    @pgq.entrypoint(
        PROCESS_INBOUND_WEBHOOK,
        executor_factory=lambda params: DatabaseRetryEntrypointExecutor(
            parameters=params, max_attempts=3
        ),
    )
    async def process_inbound_webhook(job: Job) -> None:
        from app.webhooks.inbound.processing import process_event

        assert job.payload is not None
        await process_event(factory, uuid.UUID(job.payload.decode()))

    @pgq.schedule(SWEEP, "* * * * *")
    async def sweep(schedule: Schedule) -> None:
        await run_due_work(factory)

    return pgq


async def run_worker(url: str, settings: Settings, shutdown: asyncio.Event | None = None) -> None:
    """Process jobs and sweeps until ``shutdown`` is set (or the task is cancelled)."""
    engine = create_engine(url, settings)
    factory = create_session_factory(engine)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        pgq = build_queue(connection, factory)
        runner = asyncio.create_task(
            pgq.run(
                dequeue_timeout=timedelta(seconds=5),
                heartbeat_timeout=timedelta(seconds=settings.worker_heartbeat_timeout_s),
            )
        )
        stopper = asyncio.create_task((shutdown or asyncio.Event()).wait())
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        pgq.shutdown.set()
        stopper.cancel()
        await asyncio.wait_for(asyncio.shield(runner), timeout=15)
    finally:
        await connection.close()
        await engine.dispose()
