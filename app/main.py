"""The ASGI application: ``create_app()`` wires routers, error handlers and middleware."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import version
from typing import Any

import anyio
from asyncpg import InterfaceError, PostgresError
from asyncpg.exceptions import InternalClientError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.api.auth import KeyCache
from app.api.auth_failures import FailedAuthMiddleware, build_failed_auth_limiter
from app.api.limits import BodySizeLimitMiddleware
from app.api.middleware import RequestIdMiddleware
from app.api.openapi import build_openapi, operation_id
from app.api.ratelimit import build_rate_limiter
from app.api.retries import RETRYABLE_SQLSTATES, TransactionRetryMiddleware, mark_retryable
from app.api.router import PREFIX, ROUTERS
from app.auth.bootstrap import ensure_bootstrap_key
from app.db.reads import PoolReader
from app.db.session import (
    asyncpg_dsn,
    create_engine,
    create_session_factory,
    is_disconnect,
    resolve_database_url,
)
from app.db.turns import Turns
from app.errors import PROBLEM_CONTENT_TYPE, BatonError, StatementTimeout
from app.imports.router import IMPORT_MAX_BODY_BYTES
from app.observability.logging import configure_logging, use_json
from app.observability.metrics import TelemetryMiddleware
from app.observability.router import router as metrics_router
from app.ops.docs import install_docs
from app.ops.router import router as ops_router
from app.settings import Settings, get_settings
from app.worker import WorkerHealth, run_worker

log = logging.getLogger("baton")

DESCRIPTION = """
Baton decides and records **who manages each customer, and why**.

* **Tiers, managers, customers** with computed workload and utilization.
* Every change of owner goes through an append-only **ledger**: `GET /v1/customers/{id}/history`
  and `GET /v1/customers/{id}/owner?at=` answer "who owned it, when, and why".
* Errors are `application/problem+json` (RFC 9457).
"""


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": "about:blank" if status != 422 else "https://baton.dev/problems/invalid_input",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE)


async def _baton_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BatonError)
    return JSONResponse(
        exc.to_problem(request.url.path),
        status_code=exc.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=exc.headers or None,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    where = ".".join(str(p) for p in first["loc"]) or "request"
    return _problem(
        422,
        "Invalid input",
        f"{where}: {first['msg']}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        code="invalid_input",
        errors=jsonable_encoder(errors),
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    titles = {
        404: "Not found",
        405: "Method not allowed",
        400: "Bad request",
        413: "Request body too large",
    }
    response = _problem(
        exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail), code="http_error"
    )
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at this path. Starlette's 405 names only
    the methods of the first route whose path matched, so ``PUT /v1/tiers`` said ``GET``."""
    allowed = []
    for method in _METHOD_ORDER:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    """A constraint the change breaks, raised through SQLAlchemy or by asyncpg directly (the
    hot paths that run on the driver): 409 naming the constraint."""
    constraint = getattr(_driver_error(exc), "constraint_name", None)
    return _problem(
        409,
        "Conflict",
        "The change conflicts with existing data"
        + (f" (constraint {constraint})." if constraint else "."),
        code="constraint_violation",
        constraint=constraint,
    )


def _driver_error(exc: Exception) -> Exception:
    """The asyncpg exception behind an SQLAlchemy ``DBAPIError`` (or ``exc`` itself)."""
    if isinstance(exc, DBAPIError):
        cause = getattr(exc.orig, "__cause__", None)
        return cause if isinstance(cause, Exception) else exc
    return exc


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database error, raised through SQLAlchemy or by asyncpg directly (``app.db.reads``)."""
    driver = _driver_error(exc)
    sqlstate = getattr(driver, "sqlstate", None)
    sqlstate = sqlstate if isinstance(sqlstate, str) else ""
    if sqlstate.startswith("23"):  # integrity constraint violation, raised on the driver
        return await _integrity_error(request, exc)
    if sqlstate.startswith("22"):
        # A Postgres "data exception": the request carried a value Postgres cannot take (NUL
        # in text, numeric overflow), or one asyncpg cannot encode (an int beyond int64, a
        # date past year 9999): the client's fault.
        message = str(driver).splitlines()[0] if str(driver) else sqlstate
        return _problem(
            422,
            "Invalid input",
            "A value in the request is out of range or contains characters that cannot be stored.",
            code="invalid_input",
            errors=[{"loc": ["request"], "msg": message, "type": "data_error"}],
        )
    if sqlstate in RETRYABLE_SQLSTATES:
        # Rolled back by Postgres to break a deadlock or keep transactions serialisable: run
        # the request again (TransactionRetryMiddleware); this answer goes out only when every
        # attempt lost.
        mark_retryable(request)
        log.info("transaction_conflict", extra={"path": request.url.path, "sqlstate": sqlstate})
        return _retry_later(
            "The change collided with a concurrent one (deadlock or serialization failure) "
            "several times; nothing was changed. Retry in a few seconds."
        )
    if is_disconnect(exc):
        return await _connection_error(request, exc)  # lost or refused connection, restart
    if sqlstate.startswith("53"):  # insufficient resources: too many connections, memory, disk
        log.warning("database_overloaded", extra={"path": request.url.path, "sqlstate": sqlstate})
        return _retry_later(
            "The database is out of connections or resources; retry in a few seconds."
        )
    if sqlstate == "55P03":  # lock_not_available: a bounded lock wait ran out
        log.info("lock_wait_ran_out", extra={"path": request.url.path})
        return _retry_later(
            "A long operation (an import, a rebalance) holds what this change must wait for; "
            "nothing was changed. Retry when it is done."
        )
    if sqlstate == "57014":  # query_canceled: the statement timeout fired
        timeout = StatementTimeout(
            "The request ran longer than the database statement timeout and was cancelled; "
            "nothing was changed. Narrow it (smaller page, fewer customers) or retry later."
        )
        return await _baton_error(request, timeout)
    log.exception("database_error", extra={"path": request.url.path})
    return _problem(503, "Service unavailable", "The database could not complete the request.")


async def _connection_error(request: Request, exc: Exception) -> JSONResponse:
    """The database cannot be reached (restarting, network): 503, retry later."""
    log.warning("database_unreachable", extra={"path": request.url.path, "error": repr(exc)})
    return _retry_later("The database is unreachable; retry in a few seconds.")


def _retry_later(detail: str) -> JSONResponse:
    """A 503 whose cause should pass within seconds (``Retry-After: 2``)."""
    response = _problem(503, "Service unavailable", detail)
    response.headers["Retry-After"] = "2"
    return response


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette runs this handler outside every middleware, after the request's log context
    # ended: the request id comes from the scope, so the line and the answer still carry it.
    request_id = request.scope.get("state", {}).get("request_id")
    log.exception("unhandled_error", extra={"path": request.url.path, "request_id": request_id})
    response = _problem(500, "Internal server error", "An unexpected error occurred.")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    return response


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application. The database engine is created in the lifespan, not at import."""
    settings = settings or get_settings()
    configure_logging(level=settings.log_level, json=use_json(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "session_factory", None) is not None:
            yield  # tests inject their own engine and session factory
            return
        url = await anyio.to_thread.run_sync(resolve_database_url, settings)
        engine = create_engine(url, settings)
        app.state.db_engine = engine
        app.state.session_factory = create_session_factory(engine)
        app.state.reader = await PoolReader.connect(asyncpg_dsn(url), settings)
        if settings.bootstrap_admin_key is not None:
            await ensure_bootstrap_key(app.state.session_factory, settings.bootstrap_admin_key)
        worker: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        if settings.run_worker:
            app.state.worker_health = WorkerHealth()
            app.state.worker_started_at = time.time()
            worker = asyncio.create_task(run_worker(url, settings, stop, app.state.worker_health))
        # What exists now (modules, the app, routes, metadata) lives as long as the process;
        # frozen, the collector stops walking it, and a full collection drops from 50–150 ms,
        # a pause every request in flight would wait out, to almost nothing.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if worker is not None:
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker, timeout=20)
            await app.state.reader.close()
            await engine.dispose()

    app = FastAPI(
        title="Baton",
        # Swagger UI and ReDoc come from app.ops.docs, whose assets Baton serves itself.
        docs_url=None,
        redoc_url=None,
        version=version("baton"),
        generate_unique_id_function=operation_id,
        separate_input_output_schemas=False,
        summary="Customer-portfolio reassignment: who manages this customer, and why.",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "tiers", "description": "Customer segments, their weight and minimum level."},
            {"name": "managers", "description": "Account managers, workload and portfolios."},
            {"name": "customers", "description": "Customers, manual assignment and history."},
            {"name": "assignments", "description": "The engine: plan, apply, rebalance, report."},
            {"name": "rules", "description": "The engine's versioned rule set."},
            {
                "name": "handovers",
                "description": "Moving a leaving manager's portfolio: plan, approve, execute, "
                "refuse, roll back, evaluate.",
            },
            {"name": "api-keys", "description": "API keys and their roles (admin)."},
            {"name": "audit", "description": "Who changed what, through the API (admin)."},
            {"name": "imports", "description": "Bulk import and export (CSV, NDJSON), streamed."},
            {
                "name": "webhooks",
                "description": "CRM events in (signed, stored, processed once) and Baton's "
                "events out (subscriptions, signed deliveries with retries, delivery log).",
            },
            {"name": "ops", "description": "Health probes and Prometheus metrics."},
        ],
    )
    app.openapi = partial(build_openapi, app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.rate_limiter = build_rate_limiter(settings.rate_limit)
    app.state.auth_failures = build_failed_auth_limiter(settings.auth_failure_limit)
    # Requests take turns for a transaction, first come first served, before the pool; its
    # overflow stays free for short side transactions (API key lookups).
    app.state.db_turns = Turns(settings.db_pool_size)
    app.state.key_cache = (
        KeyCache(settings.auth_cache_seconds) if settings.auth_cache_seconds > 0 else None
    )
    app.add_exception_handler(BatonError, _baton_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PostgresError, _database_error)
    app.add_exception_handler(InterfaceError, _database_error)
    app.add_exception_handler(InternalClientError, _database_error)
    app.add_exception_handler(OSError, _connection_error)
    app.add_exception_handler(Exception, _unexpected_error)
    # Innermost: a request retried after a deadlock is one request to everything outside.
    app.add_middleware(TransactionRetryMiddleware, exclude=("/v1/imports/",))
    app.add_middleware(TelemetryMiddleware)  # inside RequestIdMiddleware: sees the request id
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        overrides=(("/v1/imports/", IMPORT_MAX_BODY_BYTES),),
    )
    app.add_middleware(RequestIdMiddleware)
    # Outermost: a flood of bad keys is refused before any other work (and any log line).
    app.add_middleware(
        FailedAuthMiddleware, prefix=f"{PREFIX}/", exempt=(f"{PREFIX}/webhooks/inbound/",)
    )
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        # Outside everything: a browser's preflight is answered here, and refusals (429, 413)
        # carry the headers a page needs to read them.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "X-API-Key",
                "Content-Type",
                "If-Match",
                "Idempotency-Key",
                "X-Request-ID",
            ],
            expose_headers=[
                "ETag",
                "Location",
                "Retry-After",
                "X-Request-ID",
                "Idempotent-Replayed",
            ],
            max_age=600,
        )
    app.include_router(ops_router)
    install_docs(app)
    app.include_router(metrics_router)
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)
    return app
