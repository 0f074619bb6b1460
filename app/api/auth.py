"""Authentication (API keys) and the role decision every route must declare.

A route's role decision is a dependency that is an instance of ``RoleDecision``: ``Allow``
(which roles may read, write, delete) or ``Public`` (no key, with the reason, e.g. a webhook
verified by its signature). Routers declare one for all their routes
(``APIRouter(dependencies=[allow(...)])``); a test walks every route of the app and fails
when a route has none.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader, HTTPBearer

from app.api.auth_failures import FailedAuthLimiter, client_key
from app.auth import service
from app.auth.roles import Role
from app.auth.service import AuthenticatedKey
from app.db.session import SessionFactory, session_scope
from app.errors import Forbidden, Unauthorized

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="bt_<prefix>_<secret>",
    description="An API key sent as `Authorization: Bearer <key>`.",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key sent as `X-API-Key: <key>`."
)


def _unauthorized(detail: str) -> Unauthorized:
    error = Unauthorized(detail)
    error.headers = {"WWW-Authenticate": 'Bearer realm="baton"'}
    return error


SECURITY_SCHEMES: dict[str, Any] = {
    "HTTPBearer": _bearer.model.model_dump(mode="json", by_alias=True, exclude_none=True),
    "APIKeyHeader": _api_key_header.model.model_dump(mode="json", by_alias=True, exclude_none=True),
}
"""The OpenAPI security schemes of an API key (``components.securitySchemes``)."""
SECURITY: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]
"""The security requirement of a route that needs an API key (either scheme)."""


def presented_key(request: Request) -> str | None:
    """The API key the request presents: ``Authorization: Bearer <key>``, else ``X-API-Key``
    (read as FastAPI's ``HTTPBearer`` and ``APIKeyHeader`` read them, without a dependency
    each: the schemes are documented by ``SECURITY``)."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            return credentials
    return request.headers.get("x-api-key") or None


async def authenticate(request: Request) -> AuthenticatedKey:
    """The key behind the request, or 401; then the key's rate limit (429). Once per request:
    the role decision authenticates, and a route that asks for the key again gets it.

    The lookup runs in a short transaction of its own, so recording ``last_used_at`` never
    holds a lock for the length of the request."""
    known: AuthenticatedKey | None = request.scope.get("state", {}).get("api_key")
    if known is not None:
        return known
    presented = presented_key(request)
    if not presented:
        raise _unauthorized(
            "Send an API key as `Authorization: Bearer <key>` or in the `X-API-Key` header."
        )
    cache: KeyCache | None = getattr(request.app.state, "key_cache", None)
    key = cache.get(presented) if cache is not None else None
    if key is None:
        failures: FailedAuthLimiter | None = getattr(request.app.state, "auth_failures", None)
        address = client_key(request.scope)
        if failures is not None and not failures.trusted(presented):
            failures.check(address, what="authentications from this address")
        try:
            if len(presented) > 512:
                raise Unauthorized("The API key is not valid.")
            factory: SessionFactory = request.app.state.session_factory
            async with session_scope(factory) as session:
                key = await service.authenticate(session, presented=presented)
        except Unauthorized as exc:
            if failures is not None:
                failures.failed(address)
            raise _unauthorized(exc.detail) from None
        if failures is not None:
            failures.trust(presented)
        if cache is not None:
            cache.put(presented, key)
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.check(str(key.id))
    request.state.api_key = key
    return key


CurrentKey = Annotated[AuthenticatedKey, Depends(authenticate)]


class KeyCache:
    """Keys verified in the last ``ttl`` seconds, so a hot client costs no database round trip
    per request. Entries are keyed by a digest of the key, never the key itself. Revoking a
    key clears this process's cache at once; other processes stop accepting it within
    ``ttl`` seconds. Hand-written: a dict with expiry times is all it takes."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[float, AuthenticatedKey]] = {}

    @staticmethod
    def _slot(presented: str) -> bytes:
        return hashlib.sha256(presented.encode()).digest()

    def get(self, presented: str) -> AuthenticatedKey | None:
        """The cached identity behind ``presented``, if still fresh."""
        entry = self._entries.get(self._slot(presented))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, presented: str, key: AuthenticatedKey) -> None:
        """Remember a key just verified against the database."""
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[self._slot(presented)] = (time.monotonic() + self.ttl, key)

    def clear(self) -> None:
        """Forget every key (after a revocation)."""
        self._entries.clear()


class RoleDecision(ABC):
    """Base of the objects that decide who may call a route."""

    @abstractmethod
    def allowed_roles(self, method: str) -> frozenset[Role] | None:
        """The roles that may call with ``method``; None when no key is needed."""


class Allow(RoleDecision):
    """Roles allowed to read (GET), write (POST/PUT/PATCH) and delete (DELETE)."""

    def __init__(
        self, *, read: Iterable[Role], write: Iterable[Role], delete: Iterable[Role] | None = None
    ) -> None:
        self.read = frozenset(read) | {Role.admin}
        self.write = frozenset(write) | {Role.admin}
        self.delete = frozenset(delete) | {Role.admin} if delete is not None else self.write

    def allowed_roles(self, method: str) -> frozenset[Role]:
        if method in SAFE_METHODS:
            return self.read
        return self.delete if method == "DELETE" else self.write

    async def __call__(self, request: Request) -> AuthenticatedKey:
        key = await authenticate(request)
        allowed = self.allowed_roles(request.method)
        if key.role not in allowed:
            raise Forbidden(
                f"The '{key.role}' role may not {request.method} this resource; "
                f"allowed: {', '.join(sorted(allowed))}.",
                role=key.role.value,
            )
        return key

    def __repr__(self) -> str:
        return f"Allow(read={sorted(self.read)}, write={sorted(self.write)})"


class Public(RoleDecision):
    """No API key: the route is open or authenticated another way (``reason`` says how)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def allowed_roles(self, method: str) -> None:
        return None

    async def __call__(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"Public({self.reason!r})"


def allow(
    *, read: Iterable[Role], write: Iterable[Role], delete: Iterable[Role] | None = None
) -> Any:
    """A role decision to put in ``APIRouter(dependencies=[...])`` or a route's dependencies.
    ``admin`` is always allowed."""
    return Depends(Allow(read=read, write=write, delete=delete))


def public(reason: str) -> Any:
    """An explicit decision that a route needs no API key, and why."""
    return Depends(Public(reason))


def role_decisions(dependencies: Iterable[DependsParam]) -> list[RoleDecision]:
    """The role decisions among a route's dependencies."""
    decisions: list[RoleDecision] = []
    for d in dependencies:
        if isinstance(d.dependency, RoleDecision):
            decisions.append(d.dependency)
    return decisions


# Role sets for decisions (admin is always added).
STAFF = (Role.operator, Role.viewer)
STAFF_AND_CRM = (Role.operator, Role.viewer, Role.integration)
OPERATORS = (Role.operator,)
OPERATORS_AND_CRM = (Role.operator, Role.integration)
ADMINS = (Role.admin,)
