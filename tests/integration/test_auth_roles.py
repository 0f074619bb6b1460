"""Every route of the app has exactly one role decision, and each role gets what it says."""

import re
import uuid

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.auth import Public, RoleDecision, role_decisions
from app.auth.roles import Role
from app.main import create_app
from app.settings import Settings
from tests.integration.factories import assert_problem

PATH_VALUES = {"code": "no-such-tier", "task": "customer_list_exported", "source": "no-such-source"}


def _routes():
    app = create_app(Settings(environment="test"))
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                found.append((method, context.path, route))
    return found


ROUTES = _routes()


def _url(path: str) -> str:
    return re.sub(
        r"\{(\w+)(:\w+)?\}", lambda m: PATH_VALUES.get(m.group(1), str(uuid.uuid4())), path
    )


def _decision(route: APIRoute) -> RoleDecision:
    decisions = role_decisions(route.dependencies)
    assert len(decisions) == 1, (
        f"{route.path} has {len(decisions)} role decisions: declare exactly one with "
        "allow(read=..., write=...) or public(reason) on the router or the route"
    )
    return decisions[0]


def test_the_walk_covers_the_whole_api():
    paths = {path for _, path, _ in ROUTES}
    assert {"/healthz", "/v1/customers", "/v1/handovers", "/v1/api-keys", "/v1/audit"} <= paths
    assert len(ROUTES) >= 50


@pytest.mark.parametrize(
    ("method", "path", "route"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_every_route_declares_one_role_decision(method, path, route):
    decision = _decision(route)
    if isinstance(decision, Public):
        assert decision.reason.strip(), f"{path}: a public route says why"
    else:
        assert Role.admin in decision.allowed_roles(method), f"admin may do everything: {path}"


async def test_each_role_gets_exactly_what_the_decisions_say(api):
    clients = {role: await api.client(role.value) for role in Role}
    anonymous = api.anonymous()
    checked = 0
    for method, path, route in ROUTES:
        allowed = _decision(route).allowed_roles(method)
        url = _url(path)
        body = {} if method in {"POST", "PUT", "PATCH"} else None
        response = await anonymous.request(method, url, json=body)
        if allowed is None:
            assert response.status_code not in (401, 403), f"{method} {path} is public"
            continue
        assert_problem(response, 401)
        for role, http in clients.items():
            response = await http.request(method, url, json=body)
            if role in allowed:
                assert response.status_code not in (401, 403), (
                    f"{role} may {method} {path}: {response.text}"
                )
            else:
                body_ = assert_problem(response, 403)
                assert body_["code"] == "forbidden", f"{role} {method} {path}"
            checked += 1
    assert checked >= 200


def test_viewer_only_reads_and_admin_only_manages_keys_rules_and_audit():
    for method, path, route in ROUTES:
        allowed = _decision(route).allowed_roles(method)
        if allowed is None:
            continue
        if method != "GET":
            assert Role.viewer not in allowed, f"viewer must not {method} {path}"
        if path.startswith(("/v1/api-keys", "/v1/audit", "/v1/webhook")) or (
            path.startswith("/v1/rules") and method != "GET"
        ):
            assert allowed == {Role.admin}, f"{method} {path} is admin only"
        if Role.integration in allowed and method != "GET":
            assert path.startswith(
                ("/v1/customers", "/v1/managers", "/v1/imports", "/v1/webhooks/inbound")
            ), f"integration may only upsert customers/managers: {method} {path}"
