"""Idempotency-Key on POST: replay, 422 on a different body, 409 while in flight, per key."""

import asyncio
import uuid

from sqlalchemy import text

from tests.integration.factories import assert_problem, create_tiers, ok


async def _customers(client) -> int:
    body = await ok(await client.get("/v1/customers", params={"limit": 500}))
    return len(body["items"])


async def test_a_retry_with_the_same_key_and_body_replays_the_first_response(client):
    await create_tiers(client)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"name": "Acme", "tier": "standard"}
    first = await client.post("/v1/customers", json=body, headers=headers)
    assert first.status_code == 201
    second = await client.post("/v1/customers", json=body, headers=headers)
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _customers(client) == 1
    # a new key is a new request
    await ok(await client.post("/v1/customers", json=body), 201)
    assert await _customers(client) == 2


async def test_the_same_key_with_a_different_body_is_422(client):
    await create_tiers(client)
    headers = {"Idempotency-Key": "order-7"}
    await ok(
        await client.post("/v1/customers", json={"name": "A", "tier": "key"}, headers=headers), 201
    )
    problem = assert_problem(
        await client.post("/v1/customers", json={"name": "B", "tier": "key"}, headers=headers), 422
    )
    assert problem["code"] == "idempotency_key_reused"
    # the same key on another path is another request too
    manager = {"name": "M", "email": "m@x.io", "level": 3, "capacity": 50}
    problem = assert_problem(await client.post("/v1/managers", json=manager, headers=headers), 422)
    assert problem["code"] == "idempotency_key_reused"
    assert await _customers(client) == 1


async def test_keys_are_per_api_key(api, client):
    await create_tiers(client)
    other = await api.client("operator")
    headers = {"Idempotency-Key": "shared-value"}
    body = {"name": "Acme", "tier": "standard"}
    a = await ok(await client.post("/v1/customers", json=body, headers=headers), 201)
    b = await ok(await other.post("/v1/customers", json=body, headers=headers), 201)
    assert a["id"] != b["id"]


async def test_a_failed_request_stores_nothing_and_can_be_retried(client):
    headers = {"Idempotency-Key": "retry-me"}
    body = {"name": "Acme", "tier": "standard"}
    assert_problem(await client.post("/v1/customers", json=body, headers=headers), 422)  # no tiers
    await create_tiers(client)
    created = await client.post("/v1/customers", json=body, headers=headers)
    assert created.status_code == 201 and "idempotent-replayed" not in created.headers


async def test_a_concurrent_duplicate_is_409_and_the_change_happens_once(
    committed_api, committed_client
):
    await create_tiers(committed_client)
    managers = [
        await ok(
            await committed_client.post(
                "/v1/managers",
                json={"name": f"M{i}", "email": f"m{i}@x.io", "level": 5, "capacity": 500},
            ),
            201,
        )
        for i in range(3)
    ]
    for i in range(60):
        await ok(
            await committed_client.post("/v1/customers", json={"name": f"C{i}", "tier": "key"}), 201
        )
    assert managers
    headers = {"Idempotency-Key": "apply-once"}
    body = {"strategy": "balanced", "review": "skip"}
    results = await asyncio.gather(
        *(
            committed_client.post("/v1/assignments/apply", json=body, headers=headers)
            for _ in range(4)
        )
    )
    codes = [r.status_code for r in results]
    assert codes.count(409) >= 1 and all(c in (200, 201, 409) for c in codes), [
        r.text for r in results
    ]
    winners = [r for r in results if r.status_code < 300]
    for r in results:
        if r.status_code == 409:
            assert r.json()["code"] == "idempotency_key_in_flight"
    replay = await committed_client.post("/v1/assignments/apply", json=body, headers=headers)
    assert replay.headers.get("idempotent-replayed") == "true"
    if winners and "idempotent-replayed" not in winners[0].headers:
        assert replay.json() == winners[0].json()
    async with committed_api.factory() as session:
        moves = await session.scalar(text("SELECT count(*) FROM assignments"))
        stored = await session.scalar(text("SELECT count(*) FROM idempotency_keys"))
    assert moves == 60 and stored == 1


async def test_a_streamed_import_with_a_key_replays_and_refuses_another_file(client):
    await create_tiers(client)
    headers = {"Idempotency-Key": "import-1", "Content-Type": "text/csv"}
    body = "external_ref,name,tier\nc-1,Alpha,key\nc-2,Beta,standard\n"
    first = await client.post("/v1/imports/customers", content=body, headers=headers)
    assert first.status_code == 200 and first.json()["created"] == 2
    second = await client.post("/v1/imports/customers", content=body, headers=headers)
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json(), "the first report, not a run that finds 2 unchanged"
    problem = assert_problem(
        await client.post(
            "/v1/imports/customers", content=body + "c-3,Gamma,key\n", headers=headers
        ),
        422,
    )
    assert problem["code"] == "idempotency_key_reused"
    assert await _customers(client) == 2


async def test_a_rejected_import_stores_nothing_and_can_be_retried(client):
    await create_tiers(client)
    headers = {"Idempotency-Key": "import-2", "Content-Type": "text/csv"}
    body = "external_ref,name,tier\nc-1,Alpha,key\n"
    bad = body + "c-2,Beta,no-such-tier\n"
    assert_problem(await client.post("/v1/imports/customers", content=bad, headers=headers), 422)
    # the key is still free: a corrected file under it runs
    report = await ok(await client.post("/v1/imports/customers", content=body, headers=headers))
    assert report["created"] == 1


async def test_the_header_is_validated_and_documented(client, api):
    too_long = {"Idempotency-Key": "x" * 256}
    assert_problem(await client.post("/v1/tiers", json={}, headers=too_long), 422)
    spec = (await api.anonymous().get("/openapi.json")).json()
    post = spec["paths"]["/v1/customers"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in post["parameters"]]
    assert {"409", "422"} <= set(post["responses"])
