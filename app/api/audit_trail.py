"""The audit event of a write request, built in one place for the two moments that need it.

``BatonRoute`` records it after the endpoint succeeded, before the request's transaction
commits. The request's session is told of it beforehand (``expect``), with the status the
route answers on success, so a hot path may write it in the same statement as the change it
records (a manual move) and save a round trip; ``audit.record`` then writes nothing more.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from app.api.auth import SAFE_METHODS
from app.audit import service as audit


def event(
    request: Request, route: APIRoute, *, status_code: int, resource_id: str | None
) -> dict[str, Any] | None:
    """The audit event's columns but ``details`` (None when no API key is behind the request)."""
    key = getattr(request.state, "api_key", None)
    if key is None:
        return None
    return {
        "actor": key.name,
        "api_key_id": key.id,
        "role": key.role.value,
        "action": route.name,
        "method": request.method,
        "path": request.url.path[:500],
        "resource_type": str(route.tags[0]) if route.tags else None,
        "resource_id": resource_id,
        "status_code": status_code,
        "request_id": getattr(request.state, "request_id", None),
    }


def expect(request: Request, session: AsyncSession) -> None:
    """Tell ``session`` the audit event a success of this write request will record, when it
    is known before the endpoint runs (an id in the path, an API key, a write route)."""
    route = request.scope.get("route")
    if request.method in SAFE_METHODS or not isinstance(route, APIRoute):
        return
    resource_id = next(iter(request.path_params.values()), None)
    if resource_id is None:
        return
    values = event(
        request, route, status_code=route.status_code or 200, resource_id=str(resource_id)[:200]
    )
    if values is not None:
        audit.expect(session, values)
