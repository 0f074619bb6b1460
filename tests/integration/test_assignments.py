"""Automated placement through the API: plan, apply, assign one, rebalance, report."""

import uuid

from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


async def _setup(client):
    await create_tiers(client)
    senior = await create_manager(client, level=4, capacity=20, region="east", languages=["zh"])
    junior = await create_manager(client, level=2, capacity=20, region="west", languages=["en"])
    return senior, junior


async def test_plan_is_a_dry_run_of_the_pool(client):
    senior, junior = await _setup(client)
    pool = [await create_customer(client, tier="standard") for _ in range(4)]
    owned = await create_customer(client, tier="standard", manager_id=junior["id"])

    plan = await ok(await client.post("/v1/assignments/plan", json={}))

    assert {d["customer_id"] for d in plan["decisions"]} == {c["id"] for c in pool}
    assert owned["id"] not in {d["customer_id"] for d in plan["decisions"]}
    assert plan["customers_total"] == 4
    assert plan["metrics"]["pooled"] == 0 and plan["metrics"]["moved"] == 4
    assert plan["applied"] is False
    for c in pool:  # nothing written
        assert (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] is None
    decision = plan["decisions"][0]
    assert decision["explanation"]["rules"], "each decision explains the rules it passed"
    assert {m["manager_id"] for m in plan["managers"]} >= {senior["id"], junior["id"]}


async def test_apply_places_through_the_ledger_and_balances(client):
    senior, junior = await _setup(client)
    pool = [await create_customer(client, tier="standard") for _ in range(6)]

    result = await ok(await client.post("/v1/assignments/apply", json={"review": "skip"}))

    assert result["applied"] is True and result["moved"] == 6
    loads = {
        m["id"]: m["workload"]
        for m in [await ok(await client.get(f"/v1/managers/{x['id']}")) for x in (senior, junior)]
    }
    assert loads == {senior["id"]: 6, junior["id"]: 6}, "balanced: equal capacity, equal load"
    for c in pool:
        history = await ok(await client.get(f"/v1/customers/{c['id']}/history"))
        assert [row["reason"] for row in history["items"]] == ["auto"]
        assert history["items"][0]["ended_at"] is None


async def test_apply_respects_tier_minimum_and_pools_with_reason(client):
    senior, _junior = await _setup(client)
    strategic = await create_customer(client, tier="strategic")
    await ok(await client.patch(f"/v1/managers/{senior['id']}", json={"accepting_new": False}))

    result = await ok(
        await client.post("/v1/assignments/apply", json={"explain": "full", "review": "skip"})
    )

    decision = next(d for d in result["decisions"] if d["customer_id"] == strategic["id"])
    assert decision["manager_id"] is None
    assert decision["reasons"], "a pooled customer says why"
    assert result["metrics"]["pooled"] == 1
    customer = await ok(await client.get(f"/v1/customers/{strategic['id']}"))
    assert customer["manager_id"] is None


async def test_apply_with_stale_plan_token_is_refused(client):
    _senior, junior = await _setup(client)
    await create_customer(client, tier="standard")
    plan = await ok(await client.post("/v1/assignments/plan", json={}))
    await ok(await client.patch(f"/v1/managers/{junior['id']}", json={"capacity": 2}))

    response = await client.post("/v1/assignments/apply", json={"plan_token": plan["plan_token"]})

    body = assert_problem(response, 409)
    assert body["code"] == "stale_plan"
    assert body["changed"] == ["managers"]
    assert "plan_token" not in body, "a stale plan is planned and reviewed again"


async def test_a_plan_token_covers_every_field_a_rule_reads(client):
    await _setup(client)
    rich = {
        "id": "big_accounts_to_seniors",
        "when": [{"field": "customer.annual_value", "op": "gte", "value": 100000}],
        "conditions": [{"field": "manager.level", "op": "gte", "value": 5}],
    }
    await ok(await client.put("/v1/rules", json={"rules": {"eligibility": [rich]}}))
    customer = await create_customer(client, tier="standard", annual_value="5000.00")
    plan = await ok(await client.post("/v1/assignments/plan", json={}))
    await ok(
        await client.patch(f"/v1/customers/{customer['id']}", json={"annual_value": "900000.00"})
    )
    response = await client.post("/v1/assignments/apply", json={"plan_token": plan["plan_token"]})
    assert assert_problem(response, 409)["changed"] == ["customers"]
    now = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert now["manager_id"] is None, "nothing of the stale plan was applied"


async def test_a_token_alone_applies_the_reviewed_selection(client):
    senior, _junior = await _setup(client)
    chosen = await create_customer(client, tier="key", region="east")
    other = await create_customer(client, tier="key", region="west")
    plan = await ok(await client.post("/v1/assignments/plan", json={"region": "east"}))
    assert [d["customer_id"] for d in plan["decisions"]] == [chosen["id"]]
    result = await ok(
        await client.post("/v1/assignments/apply", json={"plan_token": plan["plan_token"]})
    )
    assert result["moved"] == 1
    assert (await ok(await client.get(f"/v1/customers/{chosen['id']}")))["manager_id"] == senior[
        "id"
    ]
    assert (await ok(await client.get(f"/v1/customers/{other['id']}")))["manager_id"] is None
    again = await client.post("/v1/assignments/apply", json={"plan_token": plan["plan_token"]})
    assert assert_problem(again, 422)["errors"][0]["loc"] == ["body", "plan_token"]
    differs = await client.post(
        "/v1/assignments/apply",
        json={
            "plan_token": (await ok(await client.post("/v1/assignments/plan", json={})))[
                "plan_token"
            ],
            "region": "west",
        },
    )
    assert assert_problem(differs, 422)["errors"][0]["loc"] == ["body", "region"]


async def test_applying_an_unreviewed_plan_must_be_asked_for_and_is_audited(client):
    await _setup(client)
    customer = await create_customer(client, tier="standard")
    refused = await client.post("/v1/assignments/apply", json={})
    assert assert_problem(refused, 422)["errors"][0]["loc"] == ["body", "plan_token"]
    assert (await ok(await client.get(f"/v1/customers/{customer['id']}")))["manager_id"] is None
    await ok(await client.post("/v1/assignments/apply", json={"review": "skip"}))
    events = await ok(await client.get("/v1/audit", params={"action": "apply_placement"}))
    assert [e["details"] for e in events["items"]] == [{"review": "skipped"}]


async def test_apply_with_fresh_plan_token_applies_that_plan(client):
    await _setup(client)
    await create_customer(client, tier="standard")
    plan = await ok(await client.post("/v1/assignments/plan", json={}))
    result = await ok(
        await client.post("/v1/assignments/apply", json={"plan_token": plan["plan_token"]})
    )
    assert [d["manager_id"] for d in result["decisions"]] == [
        d["manager_id"] for d in plan["decisions"]
    ]


async def test_plan_selection_by_ids_and_filters(client):
    _senior, _junior = await _setup(client)
    a = await create_customer(client, tier="key", region="east")
    await create_customer(client, tier="standard", region="west")

    by_tier = await ok(await client.post("/v1/assignments/plan", json={"tier": "key"}))
    assert [d["customer_id"] for d in by_tier["decisions"]] == [a["id"]]
    by_ids = await ok(await client.post("/v1/assignments/plan", json={"customer_ids": [a["id"]]}))
    assert [d["customer_id"] for d in by_ids["decisions"]] == [a["id"]]
    missing = await client.post("/v1/assignments/plan", json={"customer_ids": [str(uuid.uuid4())]})
    assert_problem(missing, 422)


async def test_successor_strategy_checks_hard_rules(client):
    _senior, junior = await _setup(client)
    strategic = await create_customer(client, tier="strategic")
    std = await create_customer(client, tier="standard")

    plan = await ok(
        await client.post(
            "/v1/assignments/plan",
            json={"strategy": "successor", "successor_id": junior["id"]},
        )
    )
    by_customer = {d["customer_id"]: d for d in plan["decisions"]}
    assert by_customer[std["id"]]["manager_id"] == junior["id"]
    assert by_customer[strategic["id"]]["manager_id"] is None
    assert "tier_min_level" in " ".join(by_customer[strategic["id"]]["reasons"])

    no_successor = await client.post("/v1/assignments/plan", json={"strategy": "successor"})
    assert_problem(no_successor, 422)


async def test_assign_one_customer(client):
    senior, _junior = await _setup(client)
    c = await create_customer(client, tier="key")

    dry = await ok(await client.post(f"/v1/customers/{c['id']}/assign", json={"dry_run": True}))
    assert dry["applied"] is False and dry["decision"]["manager_id"] == senior["id"]
    assert (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] is None

    done = await ok(await client.post(f"/v1/customers/{c['id']}/assign", json={}))
    assert done["applied"] is True
    assert (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] == senior["id"]


async def test_assign_to_named_manager_breaking_a_rule_is_409(client):
    _senior, junior = await _setup(client)
    c = await create_customer(client, tier="strategic")
    response = await client.post(
        f"/v1/customers/{c['id']}/assign", json={"manager_id": junior["id"]}
    )
    body = assert_problem(response, 409)
    assert body["violations"][0]["rule"] == "tier_min_level"
    missing = await client.post(f"/v1/customers/{uuid.uuid4()}/assign", json={})
    assert_problem(missing, 404)


async def test_custom_rule_set_changes_placement(client):
    _senior, junior = await _setup(client)
    c = await create_customer(client, tier="standard", language="en")
    rules = {
        "eligibility": [
            {
                "id": "speaks_language",
                "conditions": [
                    {"field": "manager.languages", "op": "contains", "value": "$customer.language"}
                ],
            }
        ],
        "preferences": [],
    }
    stored = await ok(await client.put("/v1/rules", json={"rules": rules, "note": "language"}))
    assert stored["version"] == 1

    plan = await ok(await client.post("/v1/assignments/plan", json={"customer_ids": [c["id"]]}))
    assert plan["decisions"][0]["manager_id"] == junior["id"]
    assert plan["rules_version"] == 1


async def test_rebalance_moves_few_customers_and_respects_stability(client):
    senior, junior = await _setup(client)
    for _ in range(8):
        await create_customer(client, tier="standard", manager_id=senior["id"])

    fresh = await ok(await client.post("/v1/rebalance", json={"target_utilization": 0.5}))
    assert fresh["metrics"]["moved"] == 0, "customers moved today are protected for 90 days"
    [held] = fresh["over_target"]
    assert held["manager_id"] == senior["id"] and held["reason"] == "customers_held"
    assert held["recently_moved"] == 8 and held["utilization_after"] == 0.8

    dry = await ok(
        await client.post(
            "/v1/rebalance", json={"target_utilization": 0.5, "min_days_since_move": 0}
        )
    )
    assert dry["applied"] is False
    assert dry["metrics"]["moved"] == 3, "16/20 → 10/20 needs exactly three moves of weight 2"
    assert dry["metrics"]["peak_utilization"] <= 0.5 and dry["over_target"] == []

    applied = await ok(
        await client.post(
            "/v1/rebalance",
            json={"target_utilization": 0.5, "min_days_since_move": 0, "dry_run": False},
        )
    )
    assert applied["moved"] == 3
    report = await ok(await client.get("/v1/reports/workload"))
    loads = {m["manager_id"]: m["workload"] for m in report["managers"]}
    assert loads[senior["id"]] == 10 and loads[junior["id"]] == 6


async def test_workload_report(client):
    senior, _junior = await _setup(client)
    await create_customer(client, tier="strategic", manager_id=senior["id"])
    await create_customer(client, tier="standard", manager_id=senior["id"])
    await create_customer(client, tier="standard")

    report = await ok(await client.get("/v1/reports/workload"))

    row = next(m for m in report["managers"] if m["manager_id"] == senior["id"])
    assert row["workload"] == 10 and row["customer_count"] == 2 and row["utilization"] == 0.5
    assert {t["tier"]: t["customers"] for t in row["by_tier"]} == {"strategic": 1, "standard": 1}
    assert report["pool"] == 1
    assert report["metrics"]["peak_utilization"] == 0.5
    assert report["metrics"]["utilization_spread"] == 0.5
    east = next(r for r in report["regions"] if r["key"] == "east")
    assert east["workload"] == 10 and east["capacity"] == 20


async def test_bad_placement_requests(client):
    await _setup(client)
    for body in (
        {"strategy": "fastest"},
        {"explain": "everything"},
        {"unknown": 1},
        {"customer_ids": ["not-a-uuid"]},
        {"decisions_limit": -1},
    ):
        assert_problem(await client.post("/v1/assignments/plan", json=body), 422)
    assert_problem(await client.post("/v1/rebalance", json={"target_utilization": 0}), 422)


async def test_a_rebalance_token_changes_with_every_customer_field_the_engine_reads(client):
    senior, _junior = await _setup(client)
    customer = await create_customer(client, tier="standard", manager_id=senior["id"])
    token = (await ok(await client.post("/v1/rebalance", json={})))["plan_token"]
    again = (await ok(await client.post("/v1/rebalance", json={})))["plan_token"]
    assert again == token, "the same input gives the same token"
    for change in (
        {"satisfaction": "9.5"},
        {"pinned": True},
        {"annual_value": "900000.00"},
        {"region": "east"},
        {"industry": "retail"},
        {"language": "zh"},
    ):
        await ok(await client.patch(f"/v1/customers/{customer['id']}", json=change))
        changed = (await ok(await client.post("/v1/rebalance", json={})))["plan_token"]
        assert changed != token, change
        token = changed
    options = await ok(await client.post("/v1/rebalance", json={"target_utilization": 0.5}))
    assert options["plan_token"] != token, "the options are part of the input"
