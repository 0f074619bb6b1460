"""HTTP routes for the audit trail (admin only)."""

from typing import Annotated

from fastapi import Query

from app.api.auth import ADMINS, allow
from app.api.deps import DbSession
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.audit import service
from app.audit.schemas import AuditEventOut
from app.core.pagination import Page
from app.core.schemas import Instant
from app.errors import problem_responses

router = PrefixedRouter(
    prefix="/audit",
    tags=["audit"],
    route_class=BatonRoute,
    dependencies=[allow(read=ADMINS, write=ADMINS)],
)


@router.get(
    "",
    response_model=Page[AuditEventOut],
    summary="Audit trail",
    responses=problem_responses(),
)
async def list_audit_events(
    session: DbSession,
    page: PageQuery,
    actor: Annotated[str | None, Query(max_length=200, description="API key name.")] = None,
    resource_type: Annotated[
        str | None, Query(max_length=64, description="`customers`, `handovers`, …")
    ] = None,
    resource_id: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[
        str | None, Query(max_length=100, description="Operation, e.g. `update_customer`.")
    ] = None,
    since: Annotated[Instant | None, Query(description="Events at or after.")] = None,
    until: Annotated[Instant | None, Query(description="Events before.")] = None,
) -> Page[AuditEventOut]:
    """Every successful change made through the API, newest first: who (the API key's name
    and role), what (operation, method, path), to which resource, and the request id."""
    return await service.list_events(
        session,
        cursor=page.cursor,
        limit=page.limit,
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        since=since,
        until=until,
    )
