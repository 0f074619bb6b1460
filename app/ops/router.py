"""Liveness and readiness probes (unversioned, unauthenticated)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from app.db.migrate import head_revision

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: str
    detail: str | None = None


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """The process is up. Does not touch the database."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness",
    responses={503: {"model": Health, "description": "Database unreachable or not migrated"}},
)
async def readyz(request: Request) -> Health | JSONResponse:
    """The database answers and is migrated to the revision this code expects."""
    try:
        async with request.app.state.db_engine.connect() as conn:
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except Exception as exc:  # any failure to reach the database means not ready
        return JSONResponse(
            {"status": "unavailable", "detail": f"database unreachable: {type(exc).__name__}"},
            status_code=503,
        )
    expected = head_revision()
    if current != expected:
        return JSONResponse(
            {"status": "unavailable", "detail": f"database at {current}, expected {expected}"},
            status_code=503,
        )
    return Health(status="ok")
