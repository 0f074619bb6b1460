"""API keys: authentication, key management, bootstrap, the Caller and the audit trail."""

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from standardwebhooks import Webhook

from app.auth.bootstrap import ensure_bootstrap_key
from app.auth.keys import generate_key
from app.main import create_app
from app.settings import Settings
from tests.integration.conftest import create_api_key
from tests.integration.factories import assert_problem, create_customer, create_tiers, ok


async def test_no_key_bad_key_and_wrong_scheme_are_401_problems(api):
    anonymous = api.anonymous()
    missing = assert_problem(await anonymous.get("/v1/customers"), 401)
    assert "Authorization: Bearer" in missing["detail"]
    real = await api.client("viewer")
    key = real.headers["Authorization"].removeprefix("Bearer ")
    for headers in (
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer " + generate_key()},  # well-formed, unknown
        {"Authorization": "Bearer " + key[:-2] + "xx"},  # right prefix, wrong secret
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "bt_000000000000_" + "a" * 40},
    ):
        response = await anonymous.get("/v1/customers", headers=headers)
        body = assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert key not in response.text and "bt_" not in body["detail"]


async def test_a_key_works_as_bearer_and_as_x_api_key(api):
    viewer = await api.client("viewer")
    key = viewer.headers["Authorization"].removeprefix("Bearer ")
    anonymous = api.anonymous()
    await ok(await anonymous.get("/v1/tiers", headers={"Authorization": f"Bearer {key}"}))
    await ok(await anonymous.get("/v1/tiers", headers={"X-API-Key": key}))


async def test_health_docs_and_spec_stay_open(api):
    anonymous = api.anonymous()
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert (await anonymous.get(path)).status_code == 200, path
    assert "swagger-ui" in (await anonymous.get("/docs")).text


async def test_the_spec_declares_the_security_schemes_for_swagger_authorize(api):
    spec = (await api.anonymous().get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key sent as `X-API-Key: <key>`.",
    }
    customers = spec["paths"]["/v1/customers"]["get"]
    assert {"HTTPBearer": []} in customers["security"]
    assert {"401", "403", "429"} <= set(customers["responses"])
    assert "security" not in spec["paths"]["/healthz"]["get"]


async def test_create_shows_the_secret_once_list_and_revoke(client, api):
    created = await ok(
        await client.post("/v1/api-keys", json={"name": "crm-sync", "role": "integration"}), 201
    )
    key = created["key"]
    assert key.startswith(f"bt_{created['prefix']}_") and created["role"] == "integration"
    listed = await ok(await client.get("/v1/api-keys"))
    mine = next(k for k in listed["items"] if k["id"] == created["id"])
    assert "key" not in mine and key not in str(listed)
    assert (await ok(await client.get(f"/v1/api-keys/{created['id']}")))["name"] == "crm-sync"
    crm = api.anonymous()
    crm.headers["X-API-Key"] = key
    await ok(await crm.get("/v1/customers"))
    assert_problem(await crm.get("/v1/api-keys"), 403)
    # the same active name twice is refused
    assert_problem(
        await client.post("/v1/api-keys", json={"name": "crm-sync", "role": "viewer"}), 409
    )
    revoked = await ok(await client.delete(f"/v1/api-keys/{created['id']}"))
    assert revoked["revoked_at"] is not None
    body = assert_problem(await crm.get("/v1/customers"), 401)
    assert "revoked" in body["detail"]
    assert created["id"] not in str(await ok(await client.get("/v1/api-keys")))
    with_revoked = await ok(await client.get("/v1/api-keys", params={"include_revoked": True}))
    assert created["id"] in str(with_revoked)
    assert_problem(await client.get("/v1/api-keys/00000000-0000-0000-0000-000000000000"), 404)


async def test_expired_keys_are_refused(client, api):
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = await ok(
        await client.post(
            "/v1/api-keys", json={"name": "temp", "role": "viewer", "expires_at": soon}
        ),
        201,
    )
    temp = api.anonymous()
    temp.headers["Authorization"] = f"Bearer {created['key']}"
    await ok(await temp.get("/v1/tiers"))
    async with api.factory() as session:
        await session.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": created["id"]},
        )
        await session.commit()
    assert "expired" in assert_problem(await temp.get("/v1/tiers"), 401)["detail"]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert_problem(
        await client.post("/v1/api-keys", json={"name": "x", "role": "viewer", "expires_at": past}),
        422,
    )
    assert_problem(await client.post("/v1/api-keys", json={"name": "x", "role": "root"}), 422)


async def test_the_bootstrap_key_is_ensured_idempotently(api):
    from pydantic import SecretStr

    key = generate_key()
    await ensure_bootstrap_key(api.factory, SecretStr(key))
    await ensure_bootstrap_key(api.factory, SecretStr(key))  # a restart changes nothing
    admin = api.anonymous()
    admin.headers["Authorization"] = f"Bearer {key}"
    keys = await ok(await admin.get("/v1/api-keys"))
    assert [k["name"] for k in keys["items"]].count("bootstrap-admin") == 1
    rotated = generate_key()
    await ensure_bootstrap_key(api.factory, SecretStr(rotated))
    assert_problem(await admin.get("/v1/api-keys"), 401)
    admin.headers["Authorization"] = f"Bearer {rotated}"
    await ok(await admin.get("/v1/api-keys"))


async def test_changes_are_audited_with_the_key_name(api, client):
    await create_tiers(client)
    ops = await api.client("operator", name="ops-console")
    customer = await create_customer(ops)
    await ok(await ops.patch(f"/v1/customers/{customer['id']}", json={"region": "EU"}))
    await ok(await ops.get(f"/v1/customers/{customer['id']}"))  # reads are not audited
    assert_problem(await ops.get("/v1/audit"), 403)
    trail = await ok(await client.get("/v1/audit", params={"resource_id": customer["id"]}))
    events = trail["items"]
    assert [(e["action"], e["method"], e["actor"]) for e in events] == [
        ("update_customer", "PATCH", "ops-console"),
        ("create_customer", "POST", "ops-console"),
    ]
    assert events[0]["role"] == "operator" and events[0]["resource_type"] == "customers"
    assert events[0]["request_id"]
    by_actor = await ok(await client.get("/v1/audit", params={"actor": "ops-console", "limit": 1}))
    assert len(by_actor["items"]) == 1 and by_actor["next_cursor"]
    # a refused change leaves no audit event
    assert_problem(await ops.post("/v1/customers", json={"name": "x", "tier": "nope"}), 422)
    assert (
        len((await ok(await client.get("/v1/audit", params={"actor": "ops-console"})))["items"])
        == 2
    )


async def test_with_the_key_cache_a_revocation_through_the_api_applies_at_once(api, client):
    from app.api.auth import KeyCache

    api.app.state.key_cache = KeyCache(ttl=300)
    created = await ok(await client.post("/v1/api-keys", json={"name": "c", "role": "viewer"}), 201)
    viewer = api.anonymous()
    viewer.headers["Authorization"] = f"Bearer {created['key']}"
    await ok(await viewer.get("/v1/tiers"))
    await ok(await viewer.get("/v1/tiers"))  # served from the cache

    await ok(await client.delete(f"/v1/api-keys/{created['id']}"))

    assert_problem(await viewer.get("/v1/tiers"), 401)


def _app(api, **settings):
    app = create_app(Settings(environment="test", rate_limit="", **settings))
    app.state.session_factory = api.factory
    app.state.db_engine = api.app.state.db_engine
    return app


def _client(app, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_an_address_that_keeps_failing_authentication_gets_429(api):
    app = _app(api, auth_failure_limit="5/minute")
    good = await create_api_key(api.factory, "viewer")
    fresh = await create_api_key(api.factory, "viewer")
    async with _client(app, "203.0.113.7") as flood, _client(app, "198.51.100.2") as other:
        ok_before = await flood.get("/v1/tiers", headers={"X-API-Key": good})
        assert ok_before.status_code == 200  # verified by this process
        for _ in range(5):
            bad = await flood.get("/v1/tiers", headers={"X-API-Key": generate_key()})
            assert_problem(bad, 401)
        refused = await flood.get("/v1/tiers", headers={"X-API-Key": generate_key()})
        body = assert_problem(refused, 429)
        assert "failed authentications" in body["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # A key verified before the flood still works from that address; an unverified one
        # waits like the rest; other addresses are not affected.
        assert (await flood.get("/v1/tiers", headers={"X-API-Key": good})).status_code == 200
        assert_problem(await flood.get("/v1/tiers", headers={"X-API-Key": fresh}), 429)
        assert_problem(await other.get("/v1/tiers", headers={"X-API-Key": generate_key()}), 401)
        assert (await other.get("/v1/tiers", headers={"X-API-Key": fresh})).status_code == 200


async def test_a_webhook_source_that_keeps_failing_its_signature_gets_429(api):
    app = _app(api, auth_failure_limit="3/minute")
    admin = await create_api_key(api.factory, "admin")
    async with _client(app, "192.0.2.1") as http:
        headers = {"X-API-Key": admin}
        for name in ("crm-a", "crm-b"):
            r = await http.post(
                "/v1/webhook-sources", json={"name": name, "adapter": "standard"}, headers=headers
            )
            assert r.status_code == 201, r.text
        secret = r.json()["secret"]  # crm-b's
        body = '{"type": "customer.churned", "data": {}}'

        def signed(with_secret: str) -> dict[str, str]:
            at = datetime.now(UTC)
            return {
                "webhook-id": "msg_1",
                "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": Webhook(with_secret).sign("msg_1", at, body),
                "content-type": "application/json",
            }

        for _ in range(3):
            r = await http.post("/v1/webhooks/inbound/crm-a", content=body, headers=signed(secret))
            assert_problem(r, 401)
        r = await http.post("/v1/webhooks/inbound/crm-a", content=body, headers=signed(secret))
        assert_problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1
        # the other source still takes its correctly signed events
        r = await http.post("/v1/webhooks/inbound/crm-b", content=body, headers=signed(secret))
        assert r.status_code in (200, 202), r.text
    async with _client(app, "192.0.2.99") as crm:  # and the same source from another sender
        r = await crm.post("/v1/webhooks/inbound/crm-a", content=body, headers=signed(secret))
        assert_problem(r, 401)
