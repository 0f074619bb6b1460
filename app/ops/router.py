"""Liveness and readiness probes (unversioned, unauthenticated)."""

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from app.api.auth import public
from app.api.routing import PrefixedRouter
from app.db.migrate import head_revision
from app.errors import PROBLEM_CONTENT_TYPE, problem_responses
from app.worker import HEARTBEAT_INTERVAL_S

router = PrefixedRouter(
    tags=["ops"],
    dependencies=[public("health probes are open to load balancers and orchestrators")],
)


class Health(BaseModel):
    status: str
    detail: str | None = None


def _unavailable(detail: str) -> JSONResponse:
    body = {"type": "about:blank", "title": "Not ready", "status": 503, "detail": detail}
    return JSONResponse(body, status_code=503, media_type=PROBLEM_CONTENT_TYPE)


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """The process is up. Does not touch the database."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness",
    responses=problem_responses(503, validation=False),
)
async def readyz(request: Request) -> Health | JSONResponse:
    """The database answers and is migrated to the revision this code expects, and the
    worker running in this process (if any) is alive and beat within the heartbeat timeout;
    503 otherwise."""
    try:
        async with request.app.state.db_engine.connect() as conn:
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except ProgrammingError:  # the database answers but has no alembic_version table
        return _unavailable("database not migrated; run `baton migrate`")
    except Exception as exc:  # any other failure to reach the database means not ready
        return _unavailable(f"database unreachable: {type(exc).__name__}")
    expected = head_revision()
    if current != expected:
        return _unavailable(f"database at {current}, expected {expected}")
    health = getattr(request.app.state, "worker_health", None)
    if health is not None:  # this process runs the worker: it must be alive and beating
        settings = request.app.state.settings
        problem = health.problem(
            stale_after=max(settings.worker_heartbeat_timeout_s, 3 * HEARTBEAT_INTERVAL_S),
            started_at=request.app.state.worker_started_at,
        )
        if problem is not None:
            return _unavailable(f"worker not healthy: {problem}")
    return Health(status="ok")
