"""Tiers through the API: CRUD, ordering, pagination, and the refusal to delete one in use."""

from tests.integration.factories import (
    STANDARD_TIERS,
    assert_problem,
    collect_pages,
    create_customer,
    create_tiers,
    ok,
)


async def test_create_get_and_list_tiers_by_rank(client):
    created = await ok(
        await client.post(
            "/v1/tiers",
            json={**STANDARD_TIERS[0], "description": "Top accounts"},
        ),
        201,
    )
    assert created["code"] == "strategic"
    assert created["weight"] == 8
    assert created["min_manager_level"] == 4
    assert created["description"] == "Top accounts"
    assert created["customer_count"] == 0
    assert created["version"] == 1
    for tier in reversed(STANDARD_TIERS[1:]):
        await ok(await client.post("/v1/tiers", json=tier), 201)

    got = await ok(await client.get("/v1/tiers/strategic"))
    assert got == created
    listed = await ok(await client.get("/v1/tiers"))
    assert [t["code"] for t in listed["items"]] == ["strategic", "key", "standard", "long_tail"]
    assert listed["next_cursor"] is None


async def test_duplicate_code_is_a_conflict(client):
    await create_tiers(client)
    body = assert_problem(await client.post("/v1/tiers", json=STANDARD_TIERS[1]), 409)
    assert "key" in body["detail"]


async def test_patch_changes_fields_and_bumps_version(client):
    await create_tiers(client)
    patched = await ok(
        await client.patch("/v1/tiers/key", json={"weight": 5, "name": "Key accounts"})
    )
    assert patched["weight"] == 5
    assert patched["name"] == "Key accounts"
    assert patched["min_manager_level"] == 3  # untouched
    assert patched["version"] == 2
    assert (await ok(await client.get("/v1/tiers/key")))["weight"] == 5


async def test_patch_with_null_for_required_field_is_refused(client):
    await create_tiers(client)
    body = assert_problem(await client.patch("/v1/tiers/key", json={"weight": None}), 422)
    assert "weight cannot be null" in body["detail"]
    assert (await ok(await client.get("/v1/tiers/key")))["weight"] == 4


async def test_unknown_tier_is_404_for_get_patch_delete(client):
    assert_problem(await client.get("/v1/tiers/nope"), 404)
    assert_problem(await client.patch("/v1/tiers/nope", json={"weight": 3}), 404)
    assert_problem(await client.patch("/v1/tiers/nope", json={}), 404)
    assert_problem(await client.delete("/v1/tiers/nope"), 404)


async def test_delete_unused_tier(client):
    await create_tiers(client)
    assert (await client.delete("/v1/tiers/long_tail")).status_code == 204
    assert_problem(await client.get("/v1/tiers/long_tail"), 404)


async def test_delete_tier_in_use_is_refused_with_count(client):
    await create_tiers(client)
    await create_customer(client, tier="key")
    await create_customer(client, tier="key", status="churned")
    body = assert_problem(await client.delete("/v1/tiers/key"), 409)
    assert "2 customer" in body["detail"]
    assert body["customer_count"] == 2
    assert (await client.get("/v1/tiers/key")).status_code == 200


async def test_customer_count_counts_active_customers_only(client):
    await create_tiers(client)
    await create_customer(client, tier="standard")
    await create_customer(client, tier="standard")
    await create_customer(client, tier="standard", status="churned")
    tier = await ok(await client.get("/v1/tiers/standard"))
    assert tier["customer_count"] == 2


async def test_pagination_walks_every_tier_once_in_rank_order(client):
    tiers = [
        {
            "code": f"t{i:02d}",
            "name": f"T{i}",
            "rank": 1 + i // 2,
            "weight": 1,
            "min_manager_level": 1,
        }
        for i in range(9)
    ]  # ranks repeat, so the code breaks ties
    for tier in reversed(tiers):
        await ok(await client.post("/v1/tiers", json=tier), 201)
    pages = await collect_pages(client, "/v1/tiers", limit=2)
    assert [len(p) for p in pages] == [2, 2, 2, 2, 1]
    assert [t["code"] for p in pages for t in p] == [t["code"] for t in tiers]
