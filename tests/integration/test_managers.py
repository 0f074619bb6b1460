"""Managers through the API: CRUD, uniqueness, filters, computed workload, portfolios."""

import uuid

from tests.integration.factories import (
    assert_problem,
    collect_pages,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


async def test_create_and_get_manager_with_empty_workload(client):
    created = await create_manager(
        client,
        name="Li Na",
        email="li.na@example.com",
        level=4,
        capacity=120,
        region="east",
        languages=["zh", "en"],
        industries=["retail"],
        team="east-enterprise",
        external_ref="hs-1",
    )
    assert created["status"] == "active"
    assert created["accepting_new"] is True
    assert created["workload"] == 0
    assert created["utilization"] == 0
    assert created["customer_count"] == 0
    assert created["languages"] == ["zh", "en"]
    got = await ok(await client.get(f"/v1/managers/{created['id']}"))
    assert got == created


async def test_email_is_unique_case_insensitively(client):
    await create_manager(client, email="Li.Na@example.com")
    body = assert_problem(
        await client.post(
            "/v1/managers",
            json={"name": "X", "email": "li.na@EXAMPLE.com", "level": 2, "capacity": 5},
        ),
        409,
    )
    assert body["field"] == "email"


async def test_external_ref_is_unique_on_create_and_patch(client):
    await create_manager(client, external_ref="crm-1")
    other = await create_manager(client, external_ref="crm-2")
    body = assert_problem(
        await client.patch(f"/v1/managers/{other['id']}", json={"external_ref": "crm-1"}), 409
    )
    assert body["field"] == "external_ref"
    # keeping one's own value is not a conflict
    await ok(await client.patch(f"/v1/managers/{other['id']}", json={"external_ref": "crm-2"}))


async def test_patch_changes_fields_and_bumps_version(client):
    m = await create_manager(client, capacity=20)
    patched = await ok(
        await client.patch(
            f"/v1/managers/{m['id']}",
            json={"capacity": 40, "accepting_new": False, "languages": ["de"]},
        )
    )
    assert patched["capacity"] == 40
    assert patched["accepting_new"] is False
    assert patched["languages"] == ["de"]
    assert patched["name"] == m["name"]
    assert patched["version"] == m["version"] + 1


async def test_unknown_manager_is_404_everywhere(client):
    missing = uuid.uuid4()
    assert_problem(await client.get(f"/v1/managers/{missing}"), 404)
    assert_problem(await client.patch(f"/v1/managers/{missing}", json={"capacity": 3}), 404)
    assert_problem(await client.delete(f"/v1/managers/{missing}"), 404)
    assert_problem(await client.get(f"/v1/managers/{missing}/customers"), 404)


async def test_workload_utilization_and_count_follow_tiers_and_churn(client):
    await create_tiers(client)
    m = await create_manager(client, level=4, capacity=20)
    await create_customer(client, tier="strategic", manager_id=m["id"])  # weight 8
    std = await create_customer(client, tier="standard", manager_id=m["id"])  # weight 2
    got = await ok(await client.get(f"/v1/managers/{m['id']}"))
    assert (got["workload"], got["customer_count"], got["utilization"]) == (10, 2, 0.5)

    await ok(await client.patch("/v1/tiers/standard", json={"weight": 4}))
    got = await ok(await client.get(f"/v1/managers/{m['id']}"))
    assert (got["workload"], got["utilization"]) == (12, 0.6)

    await ok(await client.patch(f"/v1/customers/{std['id']}", json={"status": "churned"}))
    got = await ok(await client.get(f"/v1/managers/{m['id']}"))
    assert (got["workload"], got["customer_count"], got["utilization"]) == (8, 1, 0.4)


async def test_utilization_is_null_when_capacity_is_zero(client):
    m = await create_manager(client, capacity=0)
    assert m["utilization"] is None


async def test_list_filters(client):
    a = await create_manager(client, name="Anna Schmidt", region="east", team="t1", level=2)
    b = await create_manager(client, name="Wei Zhang", region="west", team="t1", level=4)
    c = await create_manager(
        client, name="Tom 100% Sure", region="east", team="t2", level=4, status="on_leave"
    )

    async def ids(**params):
        body = await ok(await client.get("/v1/managers", params=params))
        return {m["id"] for m in body["items"]}

    assert await ids(region="east") == {a["id"], c["id"]}
    assert await ids(team="t1") == {a["id"], b["id"]}
    assert await ids(level=4) == {b["id"], c["id"]}
    assert await ids(status="on_leave") == {c["id"]}
    assert await ids(q="zhang") == {b["id"]}
    assert await ids(q="100%") == {c["id"]}  # % is literal, not a wildcard
    assert await ids(q="0% S") == {c["id"]}
    assert await ids(region="east", level=4) == {c["id"]}
    assert await ids(region="nowhere") == set()


async def test_pagination_has_no_gaps_or_duplicates(client):
    made = {(await create_manager(client))["id"] for _ in range(7)}
    pages = await collect_pages(client, "/v1/managers", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    seen = [m["id"] for p in pages for m in p]
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == made
    assert seen == sorted(seen)  # stable order: by id


async def test_portfolio_lists_the_managers_customers(client):
    await create_tiers(client)
    m = await create_manager(client, capacity=100)
    other = await create_manager(client, capacity=100)
    mine = {(await create_customer(client, manager_id=m["id"]))["id"] for _ in range(5)}
    await create_customer(client, manager_id=other["id"])
    await create_customer(client)  # pool
    pages = await collect_pages(client, f"/v1/managers/{m['id']}/customers", limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert {c["id"] for p in pages for c in p} == mine
    assert all(c["manager_id"] == m["id"] for p in pages for c in p)

    key = await create_customer(client, manager_id=m["id"], tier="key")
    only_key = await ok(await client.get(f"/v1/managers/{m['id']}/customers?tier=key"))
    assert [c["id"] for c in only_key["items"]] == [key["id"]]


async def test_delete_manager_without_history(client):
    m = await create_manager(client)
    assert (await client.delete(f"/v1/managers/{m['id']}")).status_code == 204
    assert_problem(await client.get(f"/v1/managers/{m['id']}"), 404)


async def test_delete_manager_who_owns_customers_is_refused(client):
    await create_tiers(client)
    m = await create_manager(client)
    await create_customer(client, manager_id=m["id"])
    body = assert_problem(await client.delete(f"/v1/managers/{m['id']}"), 409)
    assert "owns 1 active customer" in body["detail"]
    assert (await client.get(f"/v1/managers/{m['id']}")).status_code == 200


async def test_delete_manager_with_only_history_is_refused(client):
    await create_tiers(client)
    m = await create_manager(client)
    c = await create_customer(client, manager_id=m["id"])
    await ok(await client.patch(f"/v1/customers/{c['id']}", json={"manager_id": None}))
    body = assert_problem(await client.delete(f"/v1/managers/{m['id']}"), 409)
    assert "history" in body["detail"]
