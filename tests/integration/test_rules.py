"""The rule set API: versions, validation that points at the offending rule."""

from app.db.models import RuleSetVersion
from app.db.session import session_scope
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)

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


def _preference(rule_id: str, weight: float) -> dict:
    return {
        "id": rule_id,
        "weight": weight,
        "conditions": [{"field": "manager.region", "op": "eq", "value": "$customer.region"}],
    }


async def test_huge_weights_are_refused_at_the_rule(client):
    huge = {"preferences": [_preference("a", 1e308), _preference("b", 1e308)]}
    body = assert_problem(await client.put("/v1/rules", json={"rules": huge}), 422)
    assert body["code"] == "invalid_input"
    locs = [e["loc"] for e in body["errors"]]
    assert ["body", "rules", "preferences", 0, "weight"] in locs
    assert ["body", "rules", "preferences", 1, "weight"] in locs
    assert "preferences.0.weight" in body["detail"] and "1000000" in body["detail"]
    # JSON numbers beyond the float range arrive as infinity
    raw = '{"rules": {"preferences": [{"id": "a", "weight": 1e309, "conditions": [' + (
        '{"field": "manager.level", "op": "gte", "value": 1}]}]}}'
    )
    response = await client.put(
        "/v1/rules", content=raw, headers={"content-type": "application/json"}
    )
    assert assert_problem(response, 422)["errors"][0]["loc"][2:] == ["preferences", 0, "weight"]
    assert (await ok(await client.get("/v1/rules")))["version"] == 0, "nothing stored"


async def test_rule_count_and_size_are_bounded(client):
    many = {"preferences": [_preference(f"p{i}", 1) for i in range(201)]}
    body = assert_problem(await client.put("/v1/rules", json={"rules": many}), 422)
    assert body["errors"][0]["loc"] == ["body", "rules", "preferences"]
    cond = {"field": "manager.level", "op": "gte", "value": 1}
    deep = {
        "eligibility": [STRATEGIC_RULE, {"id": "deep", "when": [cond], "conditions": [cond] * 20}]
    }
    body = assert_problem(await client.put("/v1/rules", json={"rules": deep}), 422)
    assert body["errors"][0]["loc"] == ["body", "rules", "eligibility", 1]
    assert "at most 20 conditions" in body["detail"]
    wide = {
        "eligibility": [
            {
                "id": "wide",
                "conditions": [{"field": "manager.team", "op": "in", "value": ["t"] * 1001}],
            }
        ]
    }
    body = assert_problem(await client.put("/v1/rules", json={"rules": wide}), 422)
    assert body["errors"][0]["loc"] == ["body", "rules", "eligibility", 0, "conditions", 0, "value"]
    at_limit = {"preferences": [_preference("p", 1_000_000), _preference("q", -1_000_000)]}
    assert (await ok(await client.put("/v1/rules", json={"rules": at_limit})))["version"] == 1


async def test_duplicate_rule_id_detail_names_the_rule(client):
    dup = {"eligibility": [STRATEGIC_RULE, STRATEGIC_RULE]}
    body = assert_problem(await client.put("/v1/rules", json={"rules": dup}), 422)
    assert body["errors"][0]["loc"] == ["body", "rules", "eligibility", 1, "id"]
    expected = "'strategic_senior_same_region' is already used by a rule"
    assert expected in body["errors"][0]["msg"] and expected in body["detail"]
    assert "{" not in body["detail"]


async def test_a_stored_rule_set_the_engine_cannot_score_fails_the_plan_clearly(api, client):
    # A rule set stored before weights were bounded still reads back, and plans refuse it.
    huge = {"preferences": [_preference("a", 1e308), _preference("b", 1e308)]}
    async with session_scope(api.factory) as session:
        session.add(RuleSetVersion(version=1, rules=huge, created_by="before-limits"))
    await create_tiers(client)
    await create_manager(client, region="east")
    await create_customer(client, region="east")
    rules = await ok(await client.get("/v1/rules"))
    assert [p["weight"] for p in rules["rules"]["preferences"]] == [1e308, 1e308]
    body = assert_problem(await client.post("/v1/assignments/plan", json={}), 422)
    assert "preference weights add up" in body["detail"]
