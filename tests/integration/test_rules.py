"""The rule set API: versions, validation that points at the offending rule."""

from tests.integration.factories import assert_problem, ok

STRATEGIC_RULE = {
    "id": "strategic_senior_same_region",
    "when": [{"field": "customer.tier", "op": "eq", "value": "strategic"}],
    "conditions": [
        {"field": "manager.level", "op": "gte", "value": 4},
        {"field": "manager.region", "op": "eq", "value": "$customer.region"},
    ],
}


async def test_default_rules_are_in_force_before_any_version(client):
    rules = await ok(await client.get("/v1/rules"))
    assert rules["version"] == 0 and rules["created_by"] == "built-in"
    assert rules["rules"]["preferences"], "the built-in default prefers continuity and skills"
    assert await ok(await client.get("/v1/rules/versions")) == []


async def test_put_creates_versions_and_keeps_old_ones(client):
    first = {"eligibility": [STRATEGIC_RULE], "preferences": []}
    second = {
        "eligibility": [],
        "preferences": [
            {
                "id": "same_industry",
                "weight": 5,
                "conditions": [
                    {"field": "manager.industries", "op": "contains", "value": "$customer.industry"}
                ],
            }
        ],
    }
    v1 = await ok(await client.put("/v1/rules", json={"rules": first}))
    v2 = await ok(await client.put("/v1/rules", json={"rules": second, "note": "industry"}))
    assert (v1["version"], v2["version"]) == (1, 2)
    assert (await ok(await client.get("/v1/rules")))["version"] == 2
    versions = await ok(await client.get("/v1/rules/versions"))
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["rules"]["eligibility"][0]["id"] == "strategic_senior_same_region"


async def test_invalid_rule_points_at_the_offending_rule(client):
    bad = {
        "eligibility": [
            STRATEGIC_RULE,
            {
                "id": "broken",
                "conditions": [{"field": "manager.shoe_size", "op": "eq", "value": 1}],
            },
        ],
        "preferences": [],
    }
    body = assert_problem(await client.put("/v1/rules", json={"rules": bad}), 422)
    loc = body["errors"][0]["loc"]
    assert loc[:4] == ["body", "rules", "eligibility", 1], loc
    assert "eligibility.1" in body["detail"]
    assert (await ok(await client.get("/v1/rules")))["version"] == 0, "nothing stored"


async def test_invalid_operator_and_duplicate_ids_are_422(client):
    bad_op = {
        "eligibility": [
            {"id": "x", "conditions": [{"field": "manager.level", "op": "approx", "value": 1}]}
        ]
    }
    assert_problem(await client.put("/v1/rules", json={"rules": bad_op}), 422)
    dup = {"eligibility": [STRATEGIC_RULE, STRATEGIC_RULE]}
    assert_problem(await client.put("/v1/rules", json={"rules": dup}), 422)
