"""Structured logs: one JSON line per request in production, with the request id and the API
key name; readable lines in development."""

from __future__ import annotations

import json

import httpx
import pytest

from app.main import create_app
from app.observability.logging import configure_logging
from app.settings import Settings
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
