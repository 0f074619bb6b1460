"""Background work on a Postgres-backed job queue (pgqueuer).

pgqueuer talks asyncpg natively, so a job is enqueued on the request's own connection, inside
the same transaction as the change that needs it: the job exists exactly when the change
committed. Baton's own tables stay the source of truth (an approved handover with a due
``effective_at``, an outbox row, a notification awaiting its delivery); a sweep every minute
finds due work that no job announced, so nothing is lost if a job is.

The worker outlives its database: when the queue's connection is lost (a restart, a network
cut) or the database stops answering its heartbeat probe, it drops the connection, waits with
jittered exponential backoff, reconnects, and runs the sweeps at once so nothing due waits for
the next minute. Jobs it had picked are picked again once their heartbeat is stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from pgqueuer import AsyncpgDriver, PgQueuer, Queries
from pgqueuer.executors import DatabaseRetryEntrypointExecutor
from pgqueuer.models import Job, Schedule
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.session import (
    SessionFactory,
    asyncpg_dsn,
    create_engine,
    create_session_factory,
    session_scope,
    statement_cache_args,
)
from app.errors import InvalidTransition
from app.observability.metrics import WORKER_HEARTBEAT, WORKER_RECONNECTS
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


async def _reclaim_inactive_customers(factory: SessionFactory, now: datetime) -> int:
    from app.pool import service as pool

    async with session_scope(factory) as session:
        done = await pool.sweep_reclaims(session, now=now)
    return done.reclaimed


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
    _reclaim_inactive_customers,
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


HEARTBEAT_INTERVAL_S = 5.0
_PROBE_TIMEOUT_S = 5.0
_CONNECT_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 15.0


@dataclass
class WorkerHealth:
    """What the API process knows of its in-process worker: when it last proved that it is
    connected and its loop runs (``/readyz``, ``/metrics``)."""

    last_beat: float | None = None  # unix time
    stopped: bool = False

    def beat(self) -> None:
        """Record a heartbeat now."""
        self.last_beat = time.time()
        WORKER_HEARTBEAT.set(self.last_beat)

    def problem(self, *, stale_after: float, started_at: float) -> str | None:
        """Why the worker is not healthy, or None. Before its first beat it has ``stale_after``
        seconds from ``started_at`` to connect."""
        if self.stopped:
            return "the worker has stopped"
        since = self.last_beat if self.last_beat is not None else started_at
        age = time.time() - since
        if age > stale_after:
            return f"the worker has not beaten for {age:.0f} s"
        return None


class Backoff:
    """Exponential backoff with full jitter between reconnection attempts.

    Hand-written: the worker's loop also waits on its shutdown event and resets the delay after
    a healthy connection, which a retry decorator (tenacity) does not model; this is six lines.
    """

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first, self.cap, self.failures = first, cap, 0

    def next_delay(self) -> float:
        """The next wait, growing with each failure since the last ``reset``."""
        self.failures += 1
        return random.uniform(0, min(self.cap, self.first * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        """Connected and healthy again: the next failure waits the shortest time."""
        self.failures = 0


class QueueConnectionLost(ConnectionError):
    """The queue's database connection closed or the heartbeat probe failed."""


async def _probe(engine: AsyncEngine) -> None:
    async with asyncio.timeout(_PROBE_TIMEOUT_S), engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _beat(
    engine: AsyncEngine, connection: asyncpg.Connection, health: WorkerHealth, backoff: Backoff
) -> None:
    """Prove every few seconds that the database answers and the queue connection is open;
    raise QueueConnectionLost when either is not so."""
    healthy = 0
    while True:
        try:
            await _probe(engine)
        except Exception as exc:
            raise QueueConnectionLost(f"heartbeat probe failed: {type(exc).__name__}") from exc
        if connection.is_closed():
            raise QueueConnectionLost("the queue connection closed")
        health.beat()
        healthy += 1
        if healthy == 2:  # up for a whole interval: a flapping server still backs off
            backoff.reset()
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


async def _serve_queue(
    url: str,
    factory: SessionFactory,
    engine: AsyncEngine,
    settings: Settings,
    shutdown: asyncio.Event,
    health: WorkerHealth,
    backoff: Backoff,
) -> None:
    """Connect, run the queue and a sweep until ``shutdown`` or until the connection is lost
    (then raise)."""
    connection = await asyncio.wait_for(
        asyncpg.connect(asyncpg_dsn(url), **statement_cache_args(settings)), _CONNECT_TIMEOUT_S
    )
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _: lost.set())
    pgq = build_queue(connection, factory)
    runner = asyncio.create_task(
        pgq.run(
            dequeue_timeout=timedelta(seconds=5),
            heartbeat_timeout=timedelta(seconds=settings.worker_heartbeat_timeout_s),
        )
    )
    beats = asyncio.create_task(_beat(engine, connection, health, backoff))
    catch_up = asyncio.create_task(run_due_work(factory))  # what fell due while away
    waits = [asyncio.create_task(shutdown.wait()), asyncio.create_task(lost.wait())]
    try:
        await asyncio.wait({runner, beats, *waits}, return_when=asyncio.FIRST_COMPLETED)
        pgq.shutdown.set()
        beats.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(catch_up), _STOP_TIMEOUT_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.wait({runner}), _STOP_TIMEOUT_S)
        if beats.done() and not beats.cancelled() and beats.exception() is not None:
            raise beats.exception()  # type: ignore[misc]
        if lost.is_set() and not shutdown.is_set():
            raise QueueConnectionLost("the queue connection closed")
        if runner.done() and not runner.cancelled() and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]
        if not shutdown.is_set():
            raise QueueConnectionLost("the queue stopped")
    finally:
        for task in (runner, beats, catch_up, *waits):
            task.cancel()
        await asyncio.gather(runner, beats, catch_up, *waits, return_exceptions=True)
        if lost.is_set():
            connection.terminate()
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)
            if not connection.is_closed():
                connection.terminate()


async def run_worker(
    url: str,
    settings: Settings,
    shutdown: asyncio.Event | None = None,
    health: WorkerHealth | None = None,
) -> None:
    """Process jobs and sweeps until ``shutdown`` is set (or the task is cancelled),
    reconnecting with backoff whenever the database goes away."""
    shutdown = shutdown or asyncio.Event()
    health = health or WorkerHealth()
    engine = create_engine(url, settings)
    factory = create_session_factory(engine)
    backoff = Backoff()
    try:
        while not shutdown.is_set():
            try:
                await _serve_queue(url, factory, engine, settings, shutdown, health, backoff)
            except Exception as exc:  # whatever broke, the worker must come back
                delay = backoff.next_delay()
                WORKER_RECONNECTS.inc()
                log.warning(
                    "worker_disconnected",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:300], "retry_in_s": delay},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shutdown.wait(), delay)
    finally:
        health.stopped = True
        await engine.dispose()
