"""Structured logs: one JSON line per request in production, with the request id and the API
key name; readable lines in development."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import Request
from pydantic import SecretStr
from sqlalchemy import text
from standardwebhooks import Webhook

from app.auth.bootstrap import ensure_bootstrap_key
from app.auth.keys import generate_key
from app.main import create_app
from app.observability.logging import configure_logging
from app.settings import Settings
from app.webhooks.keys import new_secret
from tests.integration.conftest import create_api_key


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    configure_logging(level="INFO", json=False)


async def _client(api, environment: str, key_name: str) -> httpx.AsyncClient:
    app = create_app(Settings(environment=environment, rate_limit=""))
    app.state.session_factory = api.factory
    app.state.db_engine = api.app.state.db_engine
    key = await create_api_key(api.factory, "admin", key_name)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {key}"},
    )


def _json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def test_production_logs_are_json_with_request_id_key_and_duration(api, capsys):
    async with await _client(api, "production", "crm-sync") as http:
        r = await http.get("/v1/tiers", headers={"X-Request-ID": "req-abc-123"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "req-abc-123"
    lines = [x for x in _json_lines(capsys.readouterr().err) if x["event"] == "http_request"]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["request_id"] == "req-abc-123"
    assert line["api_key"] == "crm-sync"
    assert line["method"] == "GET" and line["route"] == "/v1/tiers" and line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["timestamp"].endswith("Z")


async def test_a_generated_request_id_is_returned_and_logged(api, capsys):
    async with await _client(api, "production", "viewer-app") as http:
        r = await http.get("/v1/customers/not-a-uuid")
    assert r.status_code == 422
    generated = r.headers["x-request-id"]
    assert len(generated) == 32
    lines = [x for x in _json_lines(capsys.readouterr().err) if x["event"] == "http_request"]
    assert [x["request_id"] for x in lines] == [generated]
    assert lines[0]["status"] == 422 and lines[0]["route"] == "/v1/customers/{customer_id}"


async def test_unauthenticated_requests_log_no_key(api, capsys):
    app = create_app(Settings(environment="production", rate_limit=""))
    app.state.session_factory = api.factory
    app.state.db_engine = api.app.state.db_engine
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        r = await http.get("/v1/tiers")
    assert r.status_code == 401
    lines = [x for x in _json_lines(capsys.readouterr().err) if x["event"] == "http_request"]
    assert lines[0]["status"] == 401 and lines[0]["api_key"] is None


async def test_development_logs_are_readable_lines(api, capsys):
    async with await _client(api, "development", "dev-key") as http:
        await http.get("/v1/tiers", headers={"X-Request-ID": "dev-req-1"})
    err = capsys.readouterr().err
    assert not _json_lines(err)
    line = next(x for x in err.splitlines() if "http_request" in x)
    assert "request_id=dev-req-1" in line and "api_key=dev-key" in line and "status=200" in line


def _app_with_failing_routes(api, environment: str):
    """The app, plus two routes that fail the way a bug would: an exception whose message and
    locals hold the caller's key, and a failing SQL statement whose parameter is the key."""
    app = create_app(Settings(environment=environment, rate_limit=""))
    app.state.session_factory = api.factory
    app.state.db_engine = api.app.state.db_engine

    async def boom(request: Request) -> None:
        headers = dict(request.headers)  # a local a traceback renderer might show
        local_marker = "LOCAL-VARIABLE-SHOWN"
        raise RuntimeError(f"failed for {headers.get('authorization')} ({len(local_marker)})")

    async def broken_sql(request: Request) -> None:
        async with api.factory() as session:
            await session.execute(
                text("SELECT * FROM no_such_table WHERE x = :k"),
                {"k": request.headers.get("x-api-key")},
            )

    app.add_api_route("/boom", boom, methods=["GET"])
    app.add_api_route("/broken-sql", broken_sql, methods=["GET"])
    return app


@pytest.mark.parametrize("environment", ["production", "development"])
async def test_no_secret_reaches_the_logs_when_requests_fail(
    api, capsys, allow_loopback, environment
):
    admin_key = await create_api_key(api.factory, "admin", "log-admin")
    bootstrap_key = generate_key()
    await ensure_bootstrap_key(api.factory, SecretStr(bootstrap_key))
    bad_key = generate_key()
    app = _app_with_failing_routes(api, environment)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        admin = {"Authorization": f"Bearer {admin_key}"}
        sub = await http.post(
            "/v1/webhook-subscriptions",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
            headers=admin,
        )
        assert sub.status_code == 201, sub.text
        source = await http.post(
            "/v1/webhook-sources", json={"name": "crm-logs", "adapter": "standard"}, headers=admin
        )
        assert source.status_code == 201, source.text
        source_secret = source.json()["secret"]
        body = b'{"type": "customer.created", "data": {}}'
        at = datetime.now(UTC)
        signature = Webhook(source_secret).sign("msg_1", at, body.decode())
        secrets = [admin_key, bootstrap_key, bad_key, source_secret, sub.json()["secret"]]
        secrets.append(signature.split(",", 1)[1])
        wrong = Webhook(new_secret()).sign("msg_1", at, body.decode())
        secrets.append(wrong.split(",", 1)[1])

        statuses = [
            (await http.get("/boom", headers=admin)).status_code,
            (
                await http.get("/boom", headers={"Authorization": f"Bearer {bootstrap_key}"})
            ).status_code,
            (await http.get("/broken-sql", headers={"X-API-Key": admin_key})).status_code,
            (await http.get("/v1/tiers", headers={"X-API-Key": bad_key})).status_code,
            (
                await http.get("/v1/tiers", headers={"Authorization": f"Bearer {bad_key}"})
            ).status_code,
        ]
        inbound = await http.post(
            "/v1/webhooks/inbound/crm-logs",
            content=body,
            headers={
                "webhook-id": "msg_1",
                "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": wrong,
                "content-type": "application/json",
            },
        )
    assert statuses == [500, 500, 503, 401, 401]
    assert inbound.status_code == 401, inbound.text

    err = capsys.readouterr().err
    for secret in secrets:
        assert secret not in err, f"a secret reached the {environment} log"
    for secret in (admin_key, bootstrap_key, bad_key):
        # not even the secret half of a key (bt_<id>_<secret>; the secret may contain "_" itself)
        assert secret.split("_", 2)[2] not in err
    # The failures were logged, with short tracebacks and no local variables.
    assert "unhandled_error" in err and "database_error" in err
    assert "RuntimeError: failed for Bearer [redacted]" in err
    assert "no_such_table" in err
    assert "LOCAL-VARIABLE-SHOWN" not in err
    if environment == "production":
        lines = [x for x in _json_lines(err) if x["event"] == "unhandled_error"]
        assert len(lines) == 2 and lines[0]["exception"].count('File "') <= 8
        assert all(len(x["request_id"]) == 32 for x in lines), "500s carry their request id"
