"""/metrics: Prometheus text with request, engine, pool, handover and queue series."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from tests.conftest import database_url
from tests.integration.conftest import build_app
from tests.integration.factories import create_customer, create_manager, create_tiers, ok

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_requests_are_counted_by_route_template_and_status(client):
    route = "/v1/customers/{customer_id}"
    before = await _scrape(client)
    for _ in range(3):
        r = await client.get(f"/v1/customers/{uuid.uuid4()}")
        assert r.status_code == 404
    after = await _scrape(client)
    labels = {"method": "GET", "route": route, "status": "404"}
    assert (
        _value(after, "baton_http_requests_total", **labels)
        - _value(before, "baton_http_requests_total", **labels)
        == 3
    )
    count = "baton_http_request_duration_seconds_count"
    assert _value(after, count, **labels) - _value(before, count, **labels) == 3
    bucket = {**labels, "le": "+Inf"}
    assert _value(after, "baton_http_request_duration_seconds_bucket", **bucket) >= 3
    # the ids never become label values
    assert not any(str(k[1]).count("/v1/customers/") and "{" not in str(k[1]) for k in after)


async def test_unmatched_paths_share_one_label(client):
    before = await _scrape(client)
    await client.get(f"/no/such/{uuid.uuid4()}")
    after = await _scrape(client)
    labels = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert _value(after, "baton_http_requests_total", **labels) == (
        _value(before, "baton_http_requests_total", **labels) + 1
    )


async def test_engine_plan_duration_is_observed(client):
    await create_tiers(client)
    await create_manager(client, level=4, capacity=50)
    await create_customer(client, tier="standard")
    before = await _scrape(client)
    await ok(await client.post("/v1/assignments/plan", json={"unassigned": True}))
    after = await _scrape(client)
    name = "baton_engine_plan_duration_seconds_count"
    assert _value(after, name, operation="plan_assignments") == (
        _value(before, name, operation="plan_assignments") + 1
    )


async def test_pool_and_database_gauges(committed_client):
    client = committed_client
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=50)
    await create_manager(client, level=4, capacity=50)
    await create_customer(client, tier="standard", manager_id=leaving["id"])
    await ok(
        await client.post(
            "/v1/handovers", json={"from_manager_id": leaving["id"], "reason": "departure"}
        ),
        201,
    )
    await ok(await client.get(f"/v1/managers/{leaving['id']}"))  # on the read pool
    samples = await _scrape(client)
    assert _value(samples, "baton_db_pool_connections", state="size") >= 1
    assert _value(samples, "baton_db_read_pool_connections", state="size") >= 1
    assert _value(samples, "baton_db_read_pool_connections", state="max") == 10
    assert ("baton_db_waiting_requests", (("queue", "transactions"),)) in samples
    assert ("baton_db_waiting_requests", (("queue", "reads"),)) in samples
    assert ("baton_db_pool_connections", (("state", "checked_out"),)) in samples
    assert _value(samples, "baton_handovers", state="draft") == 1
    # the assignment above wrote an outbox event; deliveries exist only with subscribers
    assert _value(samples, "baton_metrics_scrape_errors_total", source="handovers") == 0


async def test_metrics_answer_when_the_database_is_down(server_url):
    engine = create_async_engine(database_url(server_url, "baton_no_such_database"))
    try:
        app = build_app(async_sessionmaker(engine), engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            before = await _scrape(http)
            after = await _scrape(http)
    finally:
        await engine.dispose()
    name = "baton_metrics_scrape_errors_total"
    assert _value(after, name, source="database") == _value(before, name, source="database") + 1
    assert _value(after, "baton_http_requests_total", method="GET", route="/metrics", status="200")
