"""Bad input of every kind gets a 4xx problem+json that says what is wrong, never a 500."""

import base64
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
)

JSON = {"content-type": "application/json"}
TIER = {"code": "gold", "name": "Gold", "rank": 1, "weight": 3, "min_manager_level": 2}
MANAGER = {"name": "A", "email": "a@example.com", "level": 3, "capacity": 10}
CUSTOMER = {"name": "C", "tier": "standard"}


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def raw(text: str) -> dict[str, Any]:
    return {"content": text, "headers": JSON}


# (id, method, path, request kwargs, expected status); {m} {c} are an existing manager/customer
CASES = [
    # malformed and mistyped bodies
    ("malformed-json", "POST", "/v1/tiers", raw('{"code": "gold",'), 422),
    ("json-array-body", "POST", "/v1/tiers", raw("[]"), 422),
    ("json-string-body", "POST", "/v1/customers", raw('"customer"'), 422),
    ("empty-body", "POST", "/v1/managers", raw(""), 422),
    ("no-content-type", "POST", "/v1/customers", {"content": "name=x"}, 415),
    (
        "form-content-type",
        "POST",
        "/v1/customers",
        {"content": "name=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        415,
    ),
    ("rank-not-int", "POST", "/v1/tiers", {"json": {**TIER, "rank": "first"}}, 422),
    ("rank-fraction", "POST", "/v1/tiers", {"json": {**TIER, "rank": 1.5}}, 422),
    ("rank-zero", "POST", "/v1/tiers", {"json": {**TIER, "rank": 0}}, 422),
    ("rank-huge", "POST", "/v1/tiers", {"json": {**TIER, "rank": 10**30}}, 422),
    ("weight-zero", "POST", "/v1/tiers", {"json": {**TIER, "weight": 0}}, 422),
    (
        "weight-1e400",
        "POST",
        "/v1/tiers",
        raw(json.dumps(TIER).replace('"weight": 3', '"weight": 1e400')),
        422,
    ),
    (
        "weight-nan",
        "POST",
        "/v1/tiers",
        raw(json.dumps(TIER).replace('"weight": 3', '"weight": NaN')),
        422,
    ),
    ("min-level-6", "POST", "/v1/tiers", {"json": {**TIER, "min_manager_level": 6}}, 422),
    ("tier-code-format", "POST", "/v1/tiers", {"json": {**TIER, "code": "Gold Tier"}}, 422),
    ("tier-code-too-long", "POST", "/v1/tiers", {"json": {**TIER, "code": "g" * 65}}, 422),
    ("tier-name-empty", "POST", "/v1/tiers", {"json": {**TIER, "name": ""}}, 422),
    ("tier-missing-field", "POST", "/v1/tiers", {"json": {"code": "gold"}}, 422),
    ("tier-unknown-field", "POST", "/v1/tiers", {"json": {**TIER, "colour": "gold"}}, 422),
    ("tier-patch-unknown-field", "PATCH", "/v1/tiers/standard", {"json": {"code": "x"}}, 422),
    ("tier-patch-weight-negative", "PATCH", "/v1/tiers/standard", {"json": {"weight": -1}}, 422),
    ("manager-email", "POST", "/v1/managers", {"json": {**MANAGER, "email": "nope"}}, 422),
    ("manager-level-0", "POST", "/v1/managers", {"json": {**MANAGER, "level": 0}}, 422),
    (
        "manager-capacity-negative",
        "POST",
        "/v1/managers",
        {"json": {**MANAGER, "capacity": -1}},
        422,
    ),
    (
        "manager-capacity-huge",
        "POST",
        "/v1/managers",
        {"json": {**MANAGER, "capacity": 10**30}},
        422,
    ),
    ("manager-status", "POST", "/v1/managers", {"json": {**MANAGER, "status": "retired"}}, 422),
    (
        "manager-name-too-long",
        "POST",
        "/v1/managers",
        {"json": {**MANAGER, "name": "n" * 201}},
        422,
    ),
    (
        "manager-language-too-long",
        "POST",
        "/v1/managers",
        {"json": {**MANAGER, "languages": ["x" * 65]}},
        422,
    ),
    (
        "manager-languages-not-list",
        "POST",
        "/v1/managers",
        {"json": {**MANAGER, "languages": "zh"}},
        422,
    ),
    ("manager-unknown-field", "POST", "/v1/managers", {"json": {**MANAGER, "salary": 1}}, 422),
    ("manager-nul-in-name", "POST", "/v1/managers", {"json": {**MANAGER, "name": "A\u0000"}}, 422),
    ("manager-patch-level", "PATCH", "/v1/managers/{m}", {"json": {"level": "five"}}, 422),
    (
        "manager-patch-accepting",
        "PATCH",
        "/v1/managers/{m}",
        {"json": {"accepting_new": "maybe"}},
        422,
    ),
    (
        "customer-unknown-tier",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "tier": "platinum"}},
        422,
    ),
    (
        "customer-bad-manager-uuid",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "manager_id": "m-1"}},
        422,
    ),
    (
        "customer-value-negative",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "annual_value": "-1"}},
        422,
    ),
    (
        "customer-value-huge",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "annual_value": 10**30}},
        422,
    ),
    (
        "customer-value-1e400",
        "POST",
        "/v1/customers",
        raw('{"name": "C", "tier": "standard", "annual_value": 1e400}'),
        422,
    ),
    (
        "customer-value-3-decimals",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "annual_value": "1.005"}},
        422,
    ),
    (
        "customer-satisfaction-11",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "satisfaction": 11}},
        422,
    ),
    (
        "customer-satisfaction-nan",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "satisfaction": "NaN"}},
        422,
    ),
    ("customer-status", "POST", "/v1/customers", {"json": {**CUSTOMER, "status": "lost"}}, 422),
    (
        "customer-name-too-long",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "name": "n" * 201}},
        422,
    ),
    (
        "customer-nul-in-region",
        "POST",
        "/v1/customers",
        {"json": {**CUSTOMER, "region": "\u0000"}},
        422,
    ),
    ("customer-unknown-field", "POST", "/v1/customers", {"json": {**CUSTOMER, "owner": "x"}}, 422),
    ("customer-force-not-bool", "POST", "/v1/customers?force=maybe", {"json": CUSTOMER}, 422),
    ("customer-patch-status", "PATCH", "/v1/customers/{c}", {"json": {"status": "deleted"}}, 422),
    ("customer-patch-pinned", "PATCH", "/v1/customers/{c}", {"json": {"pinned": "maybe"}}, 422),
    ("customer-patch-unknown-tier", "PATCH", "/v1/customers/{c}", {"json": {"tier": "gold"}}, 422),
    (
        "customer-patch-manager-uuid",
        "PATCH",
        "/v1/customers/{c}",
        {"json": {"manager_id": 42}},
        422,
    ),
    # paths
    ("customer-id-not-uuid", "GET", "/v1/customers/not-a-uuid", {}, 422),
    ("manager-id-not-uuid", "GET", "/v1/managers/123", {}, 422),
    ("portfolio-id-not-uuid", "GET", "/v1/managers/123/customers", {}, 422),
    ("history-id-not-uuid", "GET", "/v1/customers/xyz/history", {}, 422),
    ("patch-id-not-uuid", "PATCH", "/v1/customers/xyz", {"json": {}}, 422),
    ("delete-id-not-uuid", "DELETE", "/v1/managers/xyz", {}, 422),
    ("tier-code-path-format", "GET", "/v1/tiers/NOT_A_CODE", {}, 422),
    ("no-such-route", "GET", "/v1/nothing", {}, 404),
    ("method-not-allowed", "DELETE", "/v1/tiers", {}, 405),
    # query strings
    ("manager-filter-not-uuid", "GET", "/v1/customers?manager_id=xyz", {}, 422),
    ("limit-0", "GET", "/v1/customers?limit=0", {}, 422),
    ("limit-501", "GET", "/v1/managers?limit=501", {}, 422),
    ("limit-not-int", "GET", "/v1/tiers?limit=ten", {}, 422),
    ("limit-huge", "GET", "/v1/customers?limit=1000000000000000000000000000000", {}, 422),
    ("status-filter", "GET", "/v1/customers?status=lost", {}, 422),
    ("manager-status-filter", "GET", "/v1/managers?status=retired", {}, 422),
    ("level-filter-range", "GET", "/v1/managers?level=9", {}, 422),
    ("unassigned-not-bool", "GET", "/v1/customers?unassigned=maybe", {}, 422),
    ("q-too-long", "GET", "/v1/customers", {"params": {"q": "q" * 201}}, 422),
    ("q-with-nul", "GET", "/v1/customers", {"params": {"q": "a\u0000"}}, 422),
    ("region-with-nul", "GET", "/v1/managers", {"params": {"region": "\u0000"}}, 422),
    ("tier-filter-with-nul", "GET", "/v1/customers", {"params": {"tier": "a\u0000"}}, 422),
    # cursors
    ("cursor-garbage", "GET", "/v1/customers", {"params": {"cursor": "!!not a cursor!!"}}, 422),
    ("cursor-not-json", "GET", "/v1/customers", {"params": {"cursor": "aGVsbG8"}}, 422),
    ("cursor-object", "GET", "/v1/customers", {"params": {"cursor": cursor({"id": 1})}}, 422),
    ("cursor-wrong-length", "GET", "/v1/managers", {"params": {"cursor": cursor([1, 2])}}, 422),
    ("cursor-not-uuid", "GET", "/v1/managers", {"params": {"cursor": cursor(["abc"])}}, 422),
    (
        "cursor-bool",
        "GET",
        "/v1/customers/{c}/history",
        {"params": {"cursor": cursor([True])}},
        422,
    ),
    (
        "cursor-huge-int",
        "GET",
        "/v1/customers/{c}/history",
        {"params": {"cursor": cursor([10**30])}},
        422,
    ),
    (
        "cursor-float",
        "GET",
        "/v1/customers/{c}/history",
        {"params": {"cursor": cursor([1.5])}},
        422,
    ),
    ("cursor-swapped-types", "GET", "/v1/tiers", {"params": {"cursor": cursor(["a", 1])}}, 422),
    ("cursor-huge-rank", "GET", "/v1/tiers", {"params": {"cursor": cursor([10**30, "a"])}}, 422),
    ("cursor-nul", "GET", "/v1/tiers", {"params": {"cursor": cursor([1, "a\u0000"])}}, 422),
    ("cursor-too-long", "GET", "/v1/customers", {"params": {"cursor": "A" * 513}}, 422),
    ("portfolio-cursor", "GET", "/v1/managers/{m}/customers", {"params": {"cursor": "x"}}, 422),
    # instants
    ("at-words", "GET", "/v1/customers/{c}/owner", {"params": {"at": "yesterday"}}, 422),
    (
        "at-bad-date",
        "GET",
        "/v1/customers/{c}/owner",
        {"params": {"at": "2026-13-45T00:00:00Z"}},
        422,
    ),
    (
        "at-beyond-9999",
        "GET",
        "/v1/customers/{c}/owner",
        {"params": {"at": "9999-12-31T23:00:00-14:00"}},
        422,
    ),
    (
        "at-before-year-1",
        "GET",
        "/v1/customers/{c}/owner",
        {"params": {"at": "0001-01-01T00:00:00+14:00"}},
        422,
    ),
    # a number is not an instant (pydantic alone would read it as seconds since 1970)
    ("at-number", "GET", "/v1/customers/{c}/owner", {"params": {"at": "0.5"}}, 422),
    ("at-integer", "GET", "/v1/customers/{c}/owner", {"params": {"at": "1700000000"}}, 422),
    ("audit-until-number", "GET", "/v1/audit", {"params": {"until": "0.5"}}, 422),
    ("audit-since-number", "GET", "/v1/audit", {"params": {"since": "1e3"}}, 422),
    # booleans are true or false
    ("query-bool-yes", "GET", "/v1/customers", {"params": {"unassigned": "yes"}}, 422),
    ("query-bool-1", "GET", "/v1/api-keys", {"params": {"include_revoked": "1"}}, 422),
    (
        "auto-approve-0",
        "POST",
        "/v1/webhook-sources",
        {"json": {"name": "crm", "adapter": "standard", "auto_approve": 0}},
        422,
    ),
    ("pinned-1", "PATCH", "/v1/customers/{c}", {"json": {"pinned": 1}}, 422),
    ("accepting-new-string", "PATCH", "/v1/managers/{m}", {"json": {"accepting_new": "true"}}, 422),
    # webhook targets that do not parse
    *[
        (
            f"subscription-url-{name}",
            "POST",
            "/v1/webhook-subscriptions",
            {"json": {"url": url, "event_types": ["*"]}},
            422,
        )
        for name, url in [
            ("ipv6-unclosed", "http://[::1"),
            ("bracket", "http://]P"),
            ("port-out-of-range", "http://a:99999/"),
            ("port-zero", "http://example.com:0/"),
            ("bracket-not-ipv6", "http://[example.com]/"),
        ]
    ],
    # handovers
    (
        "leave-until-past",
        "POST",
        "/v1/handovers",
        {"json": {"from_manager_id": "{m}", "reason": "leave", "until": "2020-01-01T00:00:00Z"}},
        422,
    ),
    (
        "effective-at-number",
        "POST",
        "/v1/handovers",
        {"json": {"from_manager_id": "{m}", "reason": "departure", "effective_at": 0.5}},
        422,
    ),
    (
        "briefing-contact-email",
        "PUT",
        f"/v1/handovers/{uuid.uuid4()}/items/{{c}}/briefing",
        {"json": {"key_contacts": [{"name": "Wang Fang", "email": "not an e-mail"}]}},
        422,
    ),
]


@pytest.fixture
async def existing(client):
    await create_tiers(client)
    manager = await create_manager(client)
    customer = await create_customer(client, manager_id=manager["id"])
    return {"m": manager["id"], "c": customer["id"]}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
async def test_bad_input_is_a_clear_4xx_problem(client, existing, method, path, kwargs, status):
    if "json" in kwargs:
        kwargs = {**kwargs, "json": _fill(kwargs["json"], existing)}
    response = await client.request(method, path.format(**existing), **kwargs)
    body = assert_problem(response, status)
    if status == 422:
        assert all("loc" in e and "msg" in e for e in body["errors"])


def _fill(value: Any, existing: dict[str, str]) -> Any:
    if isinstance(value, str) and value in ("{m}", "{c}"):
        return existing[value[1]]
    if isinstance(value, dict):
        return {k: _fill(v, existing) for k, v in value.items()}
    return value


async def test_a_malformed_url_in_a_subscription_update_is_422(client, allow_loopback):
    created = await client.post(
        "/v1/webhook-subscriptions", json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
    )
    assert created.status_code == 201, created.text
    path = f"/v1/webhook-subscriptions/{created.json()['id']}"
    for url in ("http://[::1", "http://]P", "http://a:99999/"):
        body = assert_problem(await client.patch(path, json={"url": url}), 422)
        assert body["errors"][0]["loc"] == ["body", "url"]
    assert (await client.get(path)).json()["url"] == "http://127.0.0.1:9/hook"


async def test_a_duplicate_rule_id_is_named_in_the_error(client):
    rule = {"id": "same", "conditions": [{"field": "manager.level", "op": "gte", "value": 1}]}
    response = await client.put(
        "/v1/rules", json={"rules": {"eligibility": [rule, rule], "preferences": []}}
    )
    body = assert_problem(response, 422)
    assert "'same' is already used by a rule" in json.dumps(body)
    assert "{id" not in json.dumps(body)


async def test_field_errors_name_the_field(client):
    body = assert_problem(
        await client.post("/v1/tiers", json={**TIER, "weight": 0, "min_manager_level": 9}), 422
    )
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert locs == {("body", "weight"), ("body", "min_manager_level")}
    assert body["detail"].startswith("body.")


async def test_a_bad_request_changes_nothing(client, existing):
    before = (await client.get(f"/v1/customers/{existing['c']}")).json()
    response = await client.patch(
        f"/v1/customers/{existing['c']}", json={"region": "north", "industry": "x\u0000"}
    )
    assert_problem(response, 422)
    after = (await client.get(f"/v1/customers/{existing['c']}")).json()
    assert after == before


@pytest.mark.parametrize(
    "path",
    ["/v1/handovers", "/v1/api-keys", "/v1/webhook-subscriptions", "/v1/webhooks/inbound-events"],
)
async def test_time_keyed_lists_refuse_a_forged_cursor(client, path):
    from app.core.pagination import encode_cursor

    forged = encode_cursor(["not-a-time", str(uuid.uuid4())])
    body = assert_problem(await client.get(path, params={"cursor": forged}), 422)
    assert body["errors"][0]["loc"] == ["query", "cursor"]


def _api_routes(app):
    from fastapi.routing import APIRoute, iter_route_contexts

    return [
        (c.path, c.original_route)
        for c in iter_route_contexts(app.routes)
        if isinstance(c.original_route, APIRoute)
    ]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


async def test_405_names_every_method_of_the_path(client, api):
    from starlette.routing import compile_path

    by_path: dict[str, set[str]] = {}
    for path, route in _api_routes(api.app):
        by_path.setdefault(path, set()).update(route.methods)
    assert by_path["/v1/tiers"] == {"GET", "POST"}
    checked = 0
    for path, own in by_path.items():
        concrete = _concrete(path)
        # a literal path (/v1/scenarios/compare) may also match a templated one (/{id})
        methods = set(own).union(
            *(r.methods for p, r in _api_routes(api.app) if compile_path(p)[0].match(concrete))
        )
        missing = next(m for m in ("PUT", "PATCH", "DELETE", "POST", "GET") if m not in methods)
        response = await client.request(missing, concrete, json={})
        assert_problem(response, 405)
        assert set(response.headers["allow"].split(", ")) == methods, (path, missing)
        checked += 1
    assert checked > 40
    response = await client.put("/v1/tiers", json={})
    assert response.headers["allow"] == "GET, POST"


async def test_415_for_a_body_that_is_not_json_on_every_body_taking_route(client, api):
    routes = [(p, r) for p, r in _api_routes(api.app) if r.body_field is not None]
    assert len(routes) > 20
    for path, route in routes:
        for method in route.methods:
            response = await client.request(
                method,
                _concrete(path),
                content="<customer/>",
                headers={"content-type": "application/xml"},
            )
            body = assert_problem(response, 415)
            assert body["code"] == "unsupported_media_type", (method, path)
    # inbound webhooks read their raw body themselves, and refuse non-JSON once it is signed
    source = await client.post("/v1/webhook-sources", json={"name": "crm", "adapter": "standard"})
    body, at = "type=customer.created", datetime.now(UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(source.json()["secret"]).sign("msg_1", at, body),
        "content-type": "application/x-www-form-urlencoded",
    }
    response = await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers)
    assert_problem(response, 415)
