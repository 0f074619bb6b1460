"""Prometheus metrics: request counts and latencies, engine plan durations, and gauges read
from the database when ``/metrics`` is scraped (pool usage, handovers, webhooks, job queue).

Metrics live in one process-wide registry (prometheus-client's default), so every app built in
a process (tests build many) shares the same series. With several uvicorn workers each process
keeps its own counters; scrape each worker (one container per worker in ``compose.yaml``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.reads import PoolReader
from app.db.turns import Turns
from app.observability.logging import api_key_name, bind_request, get_logger, unbind_request

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "baton_http_requests",
    "HTTP requests served, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "baton_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route template and status.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge("baton_http_requests_in_flight", "Requests being served now.")
ENGINE_PLAN = Histogram(
    "baton_engine_plan_duration_seconds",
    "Time the assignment engine spent computing a plan (no database time).",
    ["operation"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
IMPORT_ROWS = Counter(
    "baton_import_rows",
    "Rows read by bulk imports, by resource and outcome.",
    ["resource", "outcome"],
)
DB_POOL = Gauge("baton_db_pool_connections", "SQLAlchemy pool connections by state.", ["state"])
READ_POOL = Gauge(
    "baton_db_read_pool_connections", "Read pool (asyncpg) connections by state.", ["state"]
)
DB_WAITING = Gauge(
    "baton_db_waiting_requests",
    "Requests waiting for their turn: for a transaction, or for a read pool connection.",
    ["queue"],
)
HANDOVERS = Gauge("baton_handovers", "Handovers by state.", ["state"])
WEBHOOK_DELIVERIES = Gauge(
    "baton_webhook_deliveries", "Outbound webhook deliveries by outcome.", ["status"]
)
WEBHOOK_INBOX = Gauge(
    "baton_webhook_inbound_events", "Inbound webhook events by status.", ["status"]
)
QUEUE_DEPTH = Gauge(
    "baton_job_queue_depth", "Jobs in the queue by entrypoint and status.", ["entrypoint", "status"]
)
WORKER_HEARTBEAT = Gauge(
    "baton_worker_last_heartbeat_seconds",
    "Unix time of the in-process worker's last heartbeat (0 before the first).",
)
WORKER_RECONNECTS = Counter(
    "baton_worker_reconnects",
    "Times the worker lost its database connection (or could not open one) and retried.",
)
SCRAPE_ERRORS = Counter(
    "baton_metrics_scrape_errors",
    "Database gauges that could not be read at scrape time (missing table, timeout).",
    ["source"],
)

_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
_UNMATCHED = "<unmatched>"

log = get_logger("baton.http")


@contextmanager
def time_engine(operation: str) -> Iterator[None]:
    """Observe how long the engine takes for ``operation`` (``plan_assignments``, ``rebalance``)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        ENGINE_PLAN.labels(operation).observe(time.perf_counter() - start)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/customers/{customer_id}``): bounded label
    values whatever the ids in the URL; unmatched paths (404s) share one value."""
    # FastAPI keeps an included route's full path (with the router prefixes) on the route
    # context of the request; the route object itself knows only its own part.
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path_format", None)
    if not path:
        route = scope.get("route")
        path = getattr(route, "path_format", None)
    return path if isinstance(path, str) and path else _UNMATCHED


class TelemetryMiddleware:
    """Times every HTTP request, counts it by route template and status, binds its log context
    (request id, API key name) and writes one ``http_request`` log line when it ends.

    Pure ASGI (no BaseHTTPMiddleware) so streaming responses pass through untouched; it must sit
    inside ``RequestIdMiddleware`` so the request id is already in ``scope["state"]``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        token = bind_request(state)
        status = 500
        route = _UNMATCHED
        start = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status, route
            if message["type"] == "http.response.start":
                status = message["status"]
                route = _route_template(scope)  # while routing state is still in the scope
            await send(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - start
            HTTP_IN_FLIGHT.dec()
            if route == _UNMATCHED:
                route = _route_template(scope)
            labels = (scope["method"], route, str(status))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_LATENCY.labels(*labels).observe(elapsed)
            fields = {
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "api_key": api_key_name(state),
            }
            if route in _QUIET_ROUTES:
                log.debug("http_request", **fields)
            else:
                log.info("http_request", **fields)
            unbind_request(token)


# Gauges read from the database at scrape time. Each query is guarded: a table that does not
# exist (yet) or a slow database makes that gauge stale and counts a scrape error; /metrics
# itself never fails.
_GAUGE_QUERIES: tuple[tuple[str, Gauge, str], ...] = (
    ("handovers", HANDOVERS, "SELECT state, count(*) FROM handovers GROUP BY state"),
    (
        "webhook_deliveries",
        WEBHOOK_DELIVERIES,
        "SELECT status, count(*) FROM webhook_deliveries GROUP BY status",
    ),
    (
        "webhook_inbound_events",
        WEBHOOK_INBOX,
        "SELECT status, count(*) FROM webhook_inbound_events GROUP BY status",
    ),
    (
        "job_queue",
        QUEUE_DEPTH,
        "SELECT entrypoint, status::text, count(*) FROM pgqueuer GROUP BY entrypoint, status",
    ),
)


def _read_pool(engine: AsyncEngine) -> None:
    pool: Any = engine.sync_engine.pool
    for state, reader in (
        ("size", "size"),
        ("checked_out", "checkedout"),
        ("checked_in", "checkedin"),
        ("overflow", "overflow"),
    ):
        method = getattr(pool, reader, None)
        if method is not None:
            DB_POOL.labels(state).set(method())


def read_queue_gauges(transactions: Turns | None, reader: object | None) -> None:
    """Requests waiting for a transaction or a read connection, and the read pool's size."""
    if transactions is not None:
        DB_WAITING.labels("transactions").set(transactions.waiting)
    if isinstance(reader, PoolReader):
        DB_WAITING.labels("reads").set(reader.turns.waiting)
        size, idle = reader.pool.get_size(), reader.pool.get_idle_size()
        READ_POOL.labels("size").set(size)
        READ_POOL.labels("in_use").set(size - idle)
        READ_POOL.labels("max").set(reader.pool.get_max_size())


async def read_database_gauges(engine: AsyncEngine, *, timeout_ms: int = 2000) -> None:
    """Refresh the database-backed gauges; each query in its own savepoint with a timeout."""
    _read_pool(engine)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
            for source, gauge, sql in _GAUGE_QUERIES:
                try:
                    async with conn.begin_nested():
                        rows = (await conn.execute(text(sql))).all()
                except Exception:  # a missing table or a timeout only stales this gauge
                    SCRAPE_ERRORS.labels(source).inc()
                    continue
                gauge.clear()
                for *labels, count in rows:
                    gauge.labels(*(str(v) for v in labels)).set(count)
            await conn.rollback()
    except Exception:  # the database is unreachable: the process metrics still answer
        SCRAPE_ERRORS.labels("database").inc()


def render_metrics() -> bytes:
    """The registry in Prometheus text format."""
    return generate_latest(REGISTRY)
