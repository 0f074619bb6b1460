"""``BatonRoute``: the route class of every /v1 router.

It does, for every route, what would otherwise be repeated in each one:
- documents the errors the platform adds (401/403/429 for routes that need a key; 409/422
  for Idempotency-Key on POST; 400/413 for bodies) so the OpenAPI spec stays honest;
- adds the ``Idempotency-Key`` dependency to every POST;
- refuses (422) a query parameter the route does not declare;
- after the endpoint succeeded and before the request's transaction commits, stores the
  idempotent response and appends the audit event, so both commit with the change itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from app.api import audit_trail
from app.api.auth import SAFE_METHODS, SECURITY, role_decisions
from app.api.idempotency import IdempotentReplay, idempotency, store_response
from app.audit import service as audit
from app.errors import InvalidInput, problem_responses, require_json_body


class PrefixedRouter(APIRouter):
    """An APIRouter that says "no match" at once to a path that cannot hold its prefix.

    FastAPI finds a request's route by asking each included router in turn, and each walks all
    of its routes, once to find the router and again to dispatch within it; with 74 operations
    that walk cost a GET of a customer about a sixth of its time. Every route of this router has
    a path containing ``prefix``, so a path without it skips the walk.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.prefix and self.prefix not in scope["path"]:
            return Match.NONE, {}
        return super().matches(scope)


class BatonRoute(APIRoute):
    """An APIRoute with Baton's platform behaviour (see the module docstring)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: set[str] | list[str] | None = None,
        dependencies: Sequence[DependsParam] | None = None,
        responses: dict[int | str, dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        method_set = {m.upper() for m in (methods or ["GET"])}
        deps = list(dependencies or [])
        decisions = role_decisions(deps)
        extra: set[int] = {422}  # an unknown query parameter, on every route
        if any(d.allowed_roles(m) is not None for d in decisions for m in method_set):
            extra |= {401, 403, 429}
            # The role decision reads the key itself (one dependency, not three): the
            # schemes it accepts are documented here.
            kwargs["openapi_extra"] = {"security": SECURITY, **(kwargs.get("openapi_extra") or {})}
        if "POST" in method_set:
            deps.append(Depends(idempotency))
            extra |= {409, 422}
        self._reads_body = bool(method_set - SAFE_METHODS)
        if self._reads_body:
            extra |= {400, 413}  # a body that is not JSON/UTF-8; a body over the size limit
        # First of all but the role decision: a misspelt or unsupported filter is refused
        # rather than ignored, so a list is never taken as filtered or sorted when it is not;
        # a wrong Content-Type is refused before any work (an Idempotency-Key is not reserved
        # for a request that cannot be read).
        after = max((i + 1 for i, d in enumerate(deps) if role_decisions([d])), default=0)
        deps.insert(after, Depends(self._check_request))
        merged = {**problem_responses(*extra, validation=False), **(responses or {})}
        super().__init__(
            path, endpoint, methods=methods, dependencies=deps, responses=merged, **kwargs
        )
        self._query_names = _query_names(self.dependant)
        if self.body_field is not None and 415 not in self.responses:
            self.responses[415] = problem_responses(415, validation=False)[415]

    async def _check_request(self, request: Request) -> None:
        """422 for a query parameter the route does not declare; 415 for a body that is not
        JSON on a write route that reads a JSON body. One dependency for both: each costs
        FastAPI as much again as its own work."""
        if request.scope["query_string"]:
            self._refuse_unknown_query(request)
        if self._reads_body and self.body_field is not None:
            require_json_body(request.headers)

    def _refuse_unknown_query(self, request: Request) -> None:
        """422 for a query parameter the route does not declare."""
        unknown = sorted(set(request.query_params) - self._query_names)
        if unknown:
            raise InvalidInput(
                f"Unknown query parameter {', '.join(repr(u[:100]) for u in unknown[:10])}; "
                + (
                    f"this operation takes {', '.join(sorted(self._query_names))}."
                    if self._query_names
                    else "this operation takes none."
                ),
                errors=[
                    {
                        "loc": ["query", name[:100]],
                        "msg": "unknown parameter",
                        "type": "extra_forbidden",
                    }
                    for name in unknown[:10]
                ],
            )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
            except IdempotentReplay as replay:
                return replay.response
            if response.status_code == 201 and "location" not in response.headers:
                _set_location(request, response)
            if request.method not in SAFE_METHODS and response.status_code < 400:
                await _record(request, response, self)
            return response

        return handler


def _query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


def _set_location(request: Request, response: Response) -> None:
    """``Location`` of a created resource: the request's path and the body's ``id`` (or
    ``code``), so every 201 names what it created without each route spelling it."""
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        return
    found = body.get("id", body.get("code")) if isinstance(body, dict) else None
    if found is not None:
        response.headers["Location"] = f"{request.url.path.rstrip('/')}/{quote(str(found))}"


def _resource_id(request: Request, response: Response) -> str | None:
    """The path's first id, else the created resource's ``id`` or ``code``."""
    for value in request.path_params.values():
        return str(value)[:200]
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(bytes(response.body))
        except ValueError:
            return None
        if isinstance(body, dict):
            found = body.get("id", body.get("code"))
            return str(found)[:200] if found is not None else None
    return None


async def _record(request: Request, response: Response, route: APIRoute) -> None:
    session = getattr(request.state, "db_session", None)
    if session is None:
        return
    pending = getattr(request.state, "idempotency", None)
    if pending is not None:
        await store_response(session, request, pending, response)
    values = audit_trail.event(
        request,
        route,
        status_code=response.status_code,
        resource_id=_resource_id(request, response),
    )
    if values is None:
        return
    await audit.record(session, **values, details=audit.take_details(session))
