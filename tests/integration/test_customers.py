"""Customers through the API: CRUD, filters, pagination, and manual assignment's hard rules."""

import uuid

from tests.integration.factories import (
    assert_problem,
    collect_pages,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


async def history(client, customer_id):
    return (await ok(await client.get(f"/v1/customers/{customer_id}/history")))["items"]


async def test_create_in_pool_and_get(client):
    await create_tiers(client)
    created = await create_customer(
        client,
        name="Hangzhou Precision Parts Co.",
        tier="key",
        region="east",
        language="zh",
        industry="manufacturing",
        annual_value="480000.50",
        satisfaction="8.5",
        external_ref="hs-1",
    )
    assert created["manager_id"] is None
    assert created["status"] == "active"
    assert created["pinned"] is False
    assert created["annual_value"] == "480000.50"
    assert created["satisfaction"] == "8.50"
    assert await ok(await client.get(f"/v1/customers/{created['id']}")) == created
    assert await history(client, created["id"]) == []


async def test_a_read_after_a_change_shows_the_change(committed_client):
    """GET by id reads on its own pool, outside the writer's transaction: every committed
    change is visible to the next read, with the ETag of the new version."""
    await create_tiers(committed_client)
    manager = await create_manager(committed_client)
    customer = await create_customer(committed_client)
    patched = await ok(
        await committed_client.patch(
            f"/v1/customers/{customer['id']}", json={"manager_id": manager["id"], "region": "EU"}
        )
    )
    read = await committed_client.get(f"/v1/customers/{customer['id']}")
    body = await ok(read)
    assert body["manager_id"] == manager["id"] and body["region"] == "EU"
    assert body["version"] == patched["version"] > customer["version"]
    assert read.headers["etag"] == f'"{body["version"]}"'
    missing = await committed_client.get(f"/v1/customers/{uuid.uuid4()}")
    assert "does not exist" in assert_problem(missing, 404)["detail"]


async def test_create_with_unknown_tier_is_422(client):
    await create_tiers(client)
    body = assert_problem(
        await client.post("/v1/customers", json={"name": "X", "tier": "gold"}), 422
    )
    assert "gold" in body["detail"]
    assert (await ok(await client.get("/v1/customers")))["items"] == []


async def test_create_with_unknown_manager_is_422_and_creates_nothing(client):
    await create_tiers(client)
    r = await client.post(
        "/v1/customers", json={"name": "X", "tier": "standard", "manager_id": str(uuid.uuid4())}
    )
    assert_problem(r, 422)
    assert (await ok(await client.get("/v1/customers")))["items"] == []


async def test_external_ref_is_unique(client):
    await create_tiers(client)
    await create_customer(client, external_ref="crm-1")
    other = await create_customer(client, external_ref="crm-2")
    r = await client.post(
        "/v1/customers", json={"name": "X", "tier": "key", "external_ref": "crm-1"}
    )
    assert assert_problem(r, 409)["field"] == "external_ref"
    r = await client.patch(f"/v1/customers/{other['id']}", json={"external_ref": "crm-1"})
    assert assert_problem(r, 409)["field"] == "external_ref"


async def test_patch_fields_and_tier(client):
    await create_tiers(client)
    c = await create_customer(client, tier="standard")
    patched = await ok(
        await client.patch(
            f"/v1/customers/{c['id']}",
            json={"tier": "key", "pinned": True, "region": "north"},
        )
    )
    assert patched["tier"] == "key"
    assert patched["pinned"] is True
    assert patched["region"] == "north"
    assert patched["name"] == c["name"]
    assert patched["version"] == c["version"] + 1
    cleared = await client.patch(f"/v1/customers/{c['id']}", json={"name": None, "region": None})
    assert "name cannot be null" in assert_problem(cleared, 422)["detail"]
    optional = await ok(await client.patch(f"/v1/customers/{c['id']}", json={"region": None}))
    assert optional["region"] is None, "an optional field is cleared by null"
    r = await client.patch(f"/v1/customers/{c['id']}", json={"tier": "gold"})
    assert "gold" in assert_problem(r, 422)["detail"]


async def test_unknown_customer_is_404_everywhere(client):
    missing = uuid.uuid4()
    assert_problem(await client.get(f"/v1/customers/{missing}"), 404)
    assert_problem(await client.patch(f"/v1/customers/{missing}", json={"name": "x"}), 404)
    assert_problem(await client.delete(f"/v1/customers/{missing}"), 404)
    assert_problem(await client.get(f"/v1/customers/{missing}/history"), 404)
    assert_problem(await client.get(f"/v1/customers/{missing}/owner"), 404)


async def test_delete_customer_never_owned(client):
    await create_tiers(client)
    c = await create_customer(client)
    assert (await client.delete(f"/v1/customers/{c['id']}")).status_code == 204
    assert_problem(await client.get(f"/v1/customers/{c['id']}"), 404)


async def test_delete_customer_with_history_is_refused(client):
    await create_tiers(client)
    m = await create_manager(client)
    c = await create_customer(client, manager_id=m["id"])
    await ok(await client.patch(f"/v1/customers/{c['id']}", json={"manager_id": None}))
    body = assert_problem(await client.delete(f"/v1/customers/{c['id']}"), 409)
    assert "history" in body["detail"]
    assert (await client.get(f"/v1/customers/{c['id']}")).status_code == 200


async def test_list_filters(client):
    await create_tiers(client)
    m1 = await create_manager(client, capacity=100)
    m2 = await create_manager(client, capacity=100)
    a = await create_customer(
        client, name="Golden Harbor Trading", tier="key", region="east", manager_id=m1["id"]
    )
    b = await create_customer(
        client, name="Blue River 50% Parts", tier="standard", region="west", manager_id=m2["id"]
    )
    c = await create_customer(client, name="Summit Health", tier="standard", region="east")
    d = await create_customer(
        client, name="Orient Harbor", tier="standard", status="churned", manager_id=m1["id"]
    )

    async def ids(**params):
        body = await ok(await client.get("/v1/customers", params=params))
        return {x["id"] for x in body["items"]}

    assert await ids() == {a["id"], b["id"], c["id"], d["id"]}
    assert await ids(tier="standard") == {b["id"], c["id"], d["id"]}
    assert await ids(status="churned") == {d["id"]}
    assert await ids(region="east") == {a["id"], c["id"]}
    assert await ids(manager_id=m1["id"]) == {a["id"], d["id"]}
    assert await ids(unassigned="true") == {c["id"]}
    assert await ids(unassigned="false") == {a["id"], b["id"], d["id"]}
    assert await ids(q="harbor") == {a["id"], d["id"]}
    assert await ids(q="50%") == {b["id"]}
    assert await ids(q="harbor", status="active") == {a["id"]}
    assert await ids(manager_id=str(uuid.uuid4())) == set()


async def test_pagination_is_stable_without_gaps_or_duplicates(client):
    await create_tiers(client)
    made = {(await create_customer(client))["id"] for _ in range(11)}
    pages = await collect_pages(client, "/v1/customers", limit=4)
    assert [len(p) for p in pages] == [4, 4, 3]
    seen = [c["id"] for p in pages for c in p]
    assert len(set(seen)) == len(seen) and set(seen) == made
    assert seen == sorted(seen)
    # a filtered walk follows the same rules
    pool = await collect_pages(client, "/v1/customers", limit=5, unassigned="true")
    assert [c["id"] for p in pool for c in p] == seen


async def test_page_limit_default_and_maximum(client):
    await create_tiers(client)
    for _ in range(3):
        await create_customer(client)
    body = await ok(await client.get("/v1/customers", params={"limit": 500}))
    assert len(body["items"]) == 3 and body["next_cursor"] is None
    body = await ok(await client.get("/v1/customers", params={"limit": 3}))
    assert len(body["items"]) == 3 and body["next_cursor"] is None  # exact fit: no empty page


async def test_manual_assignment_on_create_opens_a_ledger_row(client):
    await create_tiers(client)
    m = await create_manager(client)
    c = await create_customer(client, manager_id=m["id"], tier="key")
    assert c["manager_id"] == m["id"]
    (row,) = await history(client, c["id"])
    assert row["manager_id"] == m["id"]
    assert row["reason"] == "manual"
    assert row["ended_at"] is None
    assert row["note"] is None


async def test_the_api_key_name_is_recorded_as_actor(api, client):
    await create_tiers(client)
    m = await create_manager(client)
    c = await create_customer(client)
    ops_li = await api.client("operator", name="ops-li")
    # a client-chosen X-Actor header is not trusted: the key decides who the actor is
    await ok(
        await ops_li.patch(
            f"/v1/customers/{c['id']}", json={"manager_id": m["id"]}, headers={"X-Actor": "x"}
        )
    )
    assert (await history(client, c["id"]))[0]["actor"] == "ops-li"


async def test_tier_minimum_level_is_refused_then_forced(client):
    await create_tiers(client)
    junior = await create_manager(client, level=2, capacity=100)
    c = await create_customer(client, tier="strategic")
    r = await client.patch(f"/v1/customers/{c['id']}", json={"manager_id": junior["id"]})
    body = assert_problem(r, 409)
    assert [v["rule"] for v in body["violations"]] == ["tier_min_level"]
    assert "force=true" in body["detail"]
    assert (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] is None
    assert await history(client, c["id"]) == []

    r = await client.patch(
        f"/v1/customers/{c['id']}", params={"force": "true"}, json={"manager_id": junior["id"]}
    )
    assert (await ok(r))["manager_id"] == junior["id"]
    (row,) = await history(client, c["id"])
    assert "forced" in row["note"] and "tier_min_level" in row["note"]


async def test_inactive_manager_is_refused_unless_forced(client):
    await create_tiers(client)
    away = await create_manager(client, status="on_leave")
    r = await client.post(
        "/v1/customers", json={"name": "X", "tier": "standard", "manager_id": away["id"]}
    )
    body = assert_problem(r, 409)
    assert [v["rule"] for v in body["violations"]] == ["manager_active"]
    assert (await ok(await client.get("/v1/customers")))["items"] == []  # nothing half-written

    r = await client.post(
        "/v1/customers?force=true", json={"name": "X", "tier": "standard", "manager_id": away["id"]}
    )
    c = await ok(r, 201)
    assert c["manager_id"] == away["id"]
    assert "manager_active" in (await history(client, c["id"]))[0]["note"]


async def test_capacity_is_refused_unless_forced(client):
    await create_tiers(client)
    m = await create_manager(client, capacity=3)
    await create_customer(client, manager_id=m["id"])  # workload 2
    c = await create_customer(client)
    r = await client.patch(f"/v1/customers/{c['id']}", json={"manager_id": m["id"]})
    body = assert_problem(r, 409)
    assert [v["rule"] for v in body["violations"]] == ["capacity"]
    assert "4" in body["violations"][0]["message"]

    r = await client.patch(f"/v1/customers/{c['id']}?force=true", json={"manager_id": m["id"]})
    await ok(r)
    manager = await ok(await client.get(f"/v1/managers/{m['id']}"))
    assert manager["workload"] == 4 and manager["utilization"] > 1
    assert "capacity" in (await history(client, c["id"]))[0]["note"]


async def test_several_violations_are_all_reported(client):
    await create_tiers(client)
    m = await create_manager(client, level=1, capacity=1, status="on_leave")
    r = await client.post("/v1/customers", json={"name": "X", "tier": "key", "manager_id": m["id"]})
    rules = {v["rule"] for v in assert_problem(r, 409)["violations"]}
    assert rules == {"tier_min_level", "manager_active", "capacity"}


async def test_departed_manager_is_refused_even_when_forced(client):
    await create_tiers(client)
    gone = await create_manager(client, status="departed")
    c = await create_customer(client)
    for params in ({}, {"force": "true"}):
        r = await client.patch(
            f"/v1/customers/{c['id']}", params=params, json={"manager_id": gone["id"]}
        )
        assert "departed" in assert_problem(r, 409)["detail"]
    assert (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] is None


async def test_manager_id_null_sends_to_the_pool(client):
    await create_tiers(client)
    m = await create_manager(client)
    c = await create_customer(client, manager_id=m["id"])
    pooled = await ok(await client.patch(f"/v1/customers/{c['id']}", json={"manager_id": None}))
    assert pooled["manager_id"] is None
    (row,) = await history(client, c["id"])
    assert row["ended_at"] is not None
    pool = await ok(await client.get("/v1/customers", params={"unassigned": "true"}))
    assert [x["id"] for x in pool["items"]] == [c["id"]]
    assert (await ok(await client.get(f"/v1/managers/{m['id']}")))["workload"] == 0


async def test_patch_without_manager_id_does_not_touch_the_ledger(client):
    await create_tiers(client)
    m = await create_manager(client)
    c = await create_customer(client, manager_id=m["id"])
    await ok(await client.patch(f"/v1/customers/{c['id']}", json={"region": "south"}))
    await ok(await client.patch(f"/v1/customers/{c['id']}", json={"manager_id": m["id"]}))
    rows = await history(client, c["id"])
    assert len(rows) == 1 and rows[0]["ended_at"] is None
    assert (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] == m["id"]


async def test_tier_change_and_move_in_one_patch_is_checked_on_the_new_tier(client):
    await create_tiers(client)
    m1 = await create_manager(client, capacity=10)
    m2 = await create_manager(client, capacity=2)
    c = await create_customer(client, manager_id=m1["id"], tier="key")  # weight 4
    r = await client.patch(f"/v1/customers/{c['id']}", json={"manager_id": m2["id"]})
    assert_problem(r, 409)  # 4 > 2
    r = await client.patch(
        f"/v1/customers/{c['id']}", json={"tier": "standard", "manager_id": m2["id"]}
    )
    moved = await ok(r)
    assert (moved["tier"], moved["manager_id"]) == ("standard", m2["id"])
    assert (await ok(await client.get(f"/v1/managers/{m2['id']}")))["workload"] == 2
    assert (await ok(await client.get(f"/v1/managers/{m1['id']}")))["workload"] == 0


async def test_a_manual_move_writes_the_ledger_audit_events_and_workloads_in_one_go(
    client, allow_loopback
):
    """A PATCH that moves one customer (the single-customer move, one statement) leaves what
    the set-based move leaves: the owner and version, the old period closed and the new one
    opened, the workloads of both managers, the open violation resolved, the audit event and
    a ``customer.assigned`` naming the previous owner."""
    await create_tiers(client)
    old = await create_manager(client, level=2, capacity=100)
    new = await create_manager(client, level=3, capacity=100)
    c = await create_customer(client, tier="standard")
    await ok(await client.patch(f"/v1/customers/{c['id']}", json={"manager_id": old["id"]}))
    # the tier rises above the owner's level: an open violation of this customer
    changed = await ok(await client.patch(f"/v1/customers/{c['id']}", json={"tier": "key"}))
    assert changed["violations_detected_count"] == 1
    open_violations = await ok(await client.get("/v1/violations", params={"state": "open"}))
    assert [v["customer_id"] for v in open_violations["items"]] == [c["id"]]
    await ok(
        await client.post(
            "/v1/webhook-subscriptions",
            json={"url": "http://127.0.0.1:9/crm", "event_types": ["customer.assigned"]},
        ),
        201,
    )

    moved = await ok(await client.patch(f"/v1/customers/{c['id']}", json={"manager_id": new["id"]}))
    assert moved["manager_id"] == new["id"]
    assert moved["version"] == changed["version"] + 1
    assert moved["violations_detected_count"] == 0
    newest, previous = await history(client, c["id"])
    assert (newest["manager_id"], newest["reason"], newest["ended_at"]) == (
        new["id"],
        "manual",
        None,
    )
    assert newest["started_at"] == previous["ended_at"] is not None
    assert previous["manager_id"] == old["id"]
    assert (await ok(await client.get(f"/v1/managers/{old['id']}")))["workload"] == 0
    assert (await ok(await client.get(f"/v1/managers/{new['id']}")))["workload"] == 4
    assert (await ok(await client.get("/v1/violations", params={"state": "open"})))["items"] == []
    audit = await ok(await client.get("/v1/audit", params={"action": "update_customer"}))
    assert [e["resource_id"] for e in audit["items"][:1]] == [c["id"]]
    sent = (await ok(await client.get("/v1/webhook-deliveries")))["items"]
    assert [d["event_type"] for d in sent] == ["customer.assigned"]
    detail = await ok(await client.get(f"/v1/webhook-deliveries/{sent[0]['id']}"))
    data = detail["payload"]["data"]
    assert (data["customer_id"], data["old_manager_id"], data["manager_id"]) == (
        c["id"],
        old["id"],
        new["id"],
    )

    # the same owner again changes nothing
    again = await ok(await client.patch(f"/v1/customers/{c['id']}", json={"manager_id": new["id"]}))
    assert again["version"] == moved["version"]
    assert len(await history(client, c["id"])) == 2


async def test_a_manual_moves_audit_event_is_written_once_with_what_the_request_did(client):
    """The move's statement writes the request's audit event with the change: one event per
    successful PATCH (moved, forced or not moved at all), with the key, the path, the status,
    the request id and the rules a forced move overrode; a refused PATCH leaves none."""
    await create_tiers(client)
    senior = await create_manager(client, level=3, capacity=100)
    junior = await create_manager(client, level=1, capacity=100)
    c = await create_customer(client, tier="key")
    path = f"/v1/customers/{c['id']}"

    moved = await client.patch(path, json={"manager_id": senior["id"]})
    body = await ok(moved)
    refused = await client.patch(path, json={"manager_id": junior["id"]})
    assert_problem(refused, 409)
    stale = await client.patch(
        path, json={"manager_id": junior["id"]}, headers={"If-Match": f'"{c["version"]}"'}
    )
    assert_problem(stale, 412)
    forced = await client.patch(path, params={"force": "true"}, json={"manager_id": junior["id"]})
    await ok(forced)
    unchanged = await client.patch(path, json={"manager_id": junior["id"]})
    assert (await ok(unchanged))["version"] == (await ok(forced))["version"] == body["version"] + 1

    params = {"resource_id": c["id"], "action": "update_customer"}
    events = (await ok(await client.get("/v1/audit", params=params)))["items"]
    assert [e["request_id"] for e in events] == [
        r.headers["x-request-id"] for r in (unchanged, forced, moved)
    ]
    for event in events:
        assert (event["action"], event["method"], event["path"], event["status_code"]) == (
            "update_customer",
            "PATCH",
            path,
            200,
        )
        assert event["actor"] == "test-admin" and event["resource_type"] == "customers"
    assert events[0]["details"] is None and events[2]["details"] is None
    overridden = events[1]["details"]["forced"][0]
    assert (overridden["customer_id"], overridden["manager_id"]) == (c["id"], junior["id"])
    assert [r["rule"] for r in overridden["rules"]] == ["tier_min_level"]


async def test_a_patch_answers_the_customer_as_a_get_shows_it(client):
    """The PATCH's response is serialised once from the service's model: the same JSON as a
    GET of the customer (plus the violations it detected), with its ETag."""
    await create_tiers(client)
    manager = await create_manager(client, level=3)
    c = await create_customer(client, tier="key", annual_value="1200.50", satisfaction="7.5")
    for change in ({"manager_id": manager["id"]}, {"region": "west"}, {"manager_id": None}):
        patched = await client.patch(f"/v1/customers/{c['id']}", json=change)
        body = await ok(patched)
        assert patched.headers["content-type"] == "application/json"
        assert patched.headers["etag"] == f'"{body["version"]}"'
        assert (body.pop("violations_detected"), body.pop("violations_detected_count")) == ([], 0)
        assert body == await ok(await client.get(f"/v1/customers/{c['id']}"))
