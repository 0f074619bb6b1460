"""The worker: runs the tasks and sweeps every domain registers (``app.jobs.registry``) on a
Postgres-backed job queue (pgqueuer). It sits at the top of the house: it imports the domains'
task modules; nothing below imports it.

Jobs are enqueued by ``app.jobs.queue`` on the request's own connection, inside the same
transaction as the change that needs it: the job exists exactly when the change committed.
Baton's own tables stay the source of truth (an approved handover with a due ``effective_at``,
an outbox row, a notification awaiting its delivery); a sweep every minute finds due work that
no job announced, so nothing is lost if a job is.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.executors import DatabaseRetryEntrypointExecutor
from pgqueuer.models import Job, Schedule
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import tasks as api_tasks
from app.db.session import (
    SessionFactory,
    asyncpg_dsn,
    create_engine,
    create_session_factory,
    is_disconnect,
    statement_cache_args,
)
from app.handovers import tasks as handover_tasks
from app.jobs.queue import SWEEP
from app.jobs.registry import Registry, Sweep, Task
from app.managers import tasks as manager_tasks
from app.observability.logging import redact
from app.observability.metrics import WORKER_HEARTBEAT, WORKER_RECONNECTS
from app.pool import tasks as pool_tasks
from app.settings import Settings
from app.webhooks import tasks as webhook_tasks

log = logging.getLogger("baton.worker")

REGISTRY = Registry.compose(
    handover_tasks.schedule,
    pool_tasks.registry,
    webhook_tasks.delivery,
    handover_tasks.notices,  # after delivery: settling reads what was delivered
    webhook_tasks.inbox,
    api_tasks.registry,
    webhook_tasks.retention,
    manager_tasks.registry,
)
"""Every task and sweep of every domain; the sweeps run in this order."""
SWEEPS: list[Sweep] = REGISTRY.sweeps
TICKS: list[Sweep] = REGISTRY.ticks


async def run_due_work(factory: SessionFactory, *, now: datetime | None = None) -> dict[str, int]:
    """Run every sweep once; a failing sweep is logged and does not stop the others."""
    now = now or datetime.now(UTC)
    done: dict[str, int] = {}
    for sweep in SWEEPS:
        try:
            done[sweep.__name__.lstrip("_")] = await sweep(factory, now)
        except Exception as exc:
            _failed("sweep_failed", exc, sweep=sweep.__name__)
    return done


async def run_ticks(factory: SessionFactory, *, now: datetime | None = None) -> dict[str, int]:
    """Run every tick once; a failing tick is logged and does not stop the others."""
    now = now or datetime.now(UTC)
    done: dict[str, int] = {}
    for tick in TICKS:
        try:
            done[tick.__name__] = await tick(factory, now)
        except Exception as exc:
            _failed("tick_failed", exc, tick=tick.__name__)
    return done


def _error_text(exc: BaseException) -> str:
    """An error for a log line: its type and text, redacted before it is cut to 300 characters
    (a URL cut short of its "@" would no longer read as one)."""
    return redact(f"{type(exc).__name__}: {exc}")[:300]


def _failed(event: str, exc: Exception, **extra: str) -> None:
    """Log a failed sweep or tick: with its traceback when it is a fault of its own; as a
    warning naming the error when the database went away (a restart, a network cut), which
    the heartbeat notices and the worker rides out by reconnecting."""
    if is_disconnect(exc):
        log.warning(event, extra={**extra, "error": _error_text(exc)})
    else:
        log.exception(event, extra=extra)


_TICK_BACKOFF_CAP_S = 60.0


async def _tick(factory: SessionFactory, interval: float) -> None:
    """The ticks, every ``interval`` seconds, for as long as the queue runs; after a failing
    run the wait doubles (up to a minute), so a tick that keeps failing is not logged every
    few seconds."""
    failures = 0
    while True:
        done = await run_ticks(factory)
        failures = min(failures + 1, 10) if len(done) < len(TICKS) else 0
        await asyncio.sleep(min(interval * 2**failures, max(interval, _TICK_BACKOFF_CAP_S)))


def _entrypoint(task: Task, factory: SessionFactory) -> Callable[[Job], Awaitable[None]]:
    async def run(job: Job) -> None:
        await task.run(factory, job.payload or b"")

    run.__name__ = task.name
    return run


def build_queue(connection: asyncpg.Connection, factory: SessionFactory) -> PgQueuer:
    """The pgqueuer application: every registered task as an entrypoint, and the minute sweep."""
    pgq = PgQueuer.from_asyncpg_connection(connection)
    for task in REGISTRY.tasks.values():
        attempts = task.max_attempts
        executor = (
            None
            if attempts is None
            else lambda params, attempts=attempts: DatabaseRetryEntrypointExecutor(
                parameters=params, max_attempts=attempts
            )
        )
        pgq.entrypoint(task.name, executor_factory=executor)(_entrypoint(task, factory))

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
    ticks = asyncio.create_task(_tick(factory, settings.worker_tick_s))
    catch_up = asyncio.create_task(run_due_work(factory))  # what fell due while away
    waits = [asyncio.create_task(shutdown.wait()), asyncio.create_task(lost.wait())]
    try:
        await asyncio.wait({runner, beats, *waits}, return_when=asyncio.FIRST_COMPLETED)
        pgq.shutdown.set()
        beats.cancel()
        ticks.cancel()
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
        for task in (runner, beats, ticks, catch_up, *waits):
            task.cancel()
        await asyncio.gather(runner, beats, ticks, catch_up, *waits, return_exceptions=True)
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
                    extra={"error": _error_text(exc), "retry_in_s": delay},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shutdown.wait(), delay)
    finally:
        health.stopped = True
        await engine.dispose()
