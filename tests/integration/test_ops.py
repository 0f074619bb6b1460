"""Health probes and the request id."""

import time

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from tests.conftest import database_url
from tests.integration.conftest import build_app
from tests.integration.factories import assert_problem


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_when_migrated(client):
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def _readyz_against(url: str) -> httpx.Response:
    engine = create_async_engine(url)
    try:
        app = build_app(async_sessionmaker(engine), engine)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            return await http.get("/readyz")
    finally:
        await engine.dispose()


async def test_readyz_when_database_unreachable(server_url):
    response = await _readyz_against(database_url(server_url, "baton_no_such_database"))
    body = assert_problem(response, 503)
    assert "unreachable" in body["detail"]


async def test_readyz_when_database_not_migrated(server_url):
    # the server's maintenance database has no Baton schema
    response = await _readyz_against(server_url)
    body = assert_problem(response, 503)
    assert "not migrated" in body["detail"]


async def test_request_id_is_echoed_or_made(client):
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] not in ("", "bad id with spaces")
    assert len(made.headers["x-request-id"]) == 32
    error = await client.get("/v1/customers/not-a-uuid", headers={"X-Request-ID": "r-1"})
    assert error.status_code == 422
    assert error.headers["x-request-id"] == "r-1"


async def test_docs_are_served(client):
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "Baton"


async def test_readyz_reports_a_stalled_or_dead_in_process_worker(api):
    from app.worker import WorkerHealth

    http = api.anonymous()
    health = WorkerHealth()
    api.app.state.worker_health = health
    api.app.state.worker_started_at = time.time() - 120  # started two minutes ago
    body = assert_problem(await http.get("/readyz"), 503)
    assert "worker not healthy: the worker has not beaten" in body["detail"]

    health.beat()
    assert (await http.get("/readyz")).status_code == 200
    metrics = (await http.get("/metrics")).text
    beat = next(x for x in metrics.splitlines() if x.startswith("baton_worker_last_heartbeat"))
    assert abs(float(beat.split()[-1]) - time.time()) < 60

    health.stopped = True  # the worker's task ended
    body = assert_problem(await http.get("/readyz"), 503)
    assert "the worker has stopped" in body["detail"]
