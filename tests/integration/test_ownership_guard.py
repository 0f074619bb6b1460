"""One placement guard on every path that gives a customer an owner; violations reported,
listed and repaired."""

from __future__ import annotations

import json
import random

import pytest

from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)

SAME_REGION = {
    "eligibility": [
        {
            "id": "same_region",
            "conditions": [{"field": "manager.region", "op": "eq", "value": "$customer.region"}],
        }
    ]
}


async def violations(client, **params):
    return (await ok(await client.get("/v1/violations", params=params)))["items"]


async def audit_details(client, action):
    events = (await ok(await client.get("/v1/audit", params={"action": action})))["items"]
    return [e["details"] for e in events]


async def test_a_manual_move_is_checked_against_the_rule_sets_hard_rules(client, api):
    await create_tiers(client)
    east = await create_manager(client, region="east")
    west = await create_manager(client, region="west")
    customer = await create_customer(client, region="east")
    await ok(await client.put("/v1/rules", json={"rules": SAME_REGION}))

    body = assert_problem(
        await client.patch(f"/v1/customers/{customer['id']}", json={"manager_id": west["id"]}),
        409,
    )
    assert body["code"] == "rule_violation"
    assert [v["rule"] for v in body["violations"]] == ["same_region"]
    # the engine's single placement names the same rule for the same pair
    assign = assert_problem(
        await client.post(
            f"/v1/customers/{customer['id']}/assign", json={"manager_id": west["id"]}
        ),
        409,
    )
    assert assign["violations"] == body["violations"], "one guard decides both entry points"

    moved = await ok(
        await client.patch(f"/v1/customers/{customer['id']}", json={"manager_id": east["id"]})
    )
    assert moved["manager_id"] == east["id"] and moved["violations_detected"] == []


async def test_force_is_for_operators_and_admins_and_is_recorded(client, api):
    await create_tiers(client)
    junior = await create_manager(client, level=1, capacity=1)
    customer = await create_customer(client, tier="key")
    crm = await api.client("integration")

    refused = await crm.patch(
        f"/v1/customers/{customer['id']}",
        params={"force": "true"},
        json={"manager_id": junior["id"]},
    )
    assert assert_problem(refused, 403)["code"] == "forbidden"
    plain = await crm.patch(f"/v1/customers/{customer['id']}", json={"manager_id": junior["id"]})
    rules = {v["rule"] for v in assert_problem(plain, 409)["violations"]}
    assert rules == {"tier_min_level", "capacity"}
    assert (await ok(await client.get(f"/v1/customers/{customer['id']}")))["manager_id"] is None

    operator = await api.client("operator", name="ops")
    forced = await ok(
        await operator.patch(
            f"/v1/customers/{customer['id']}",
            params={"force": "true"},
            json={"manager_id": junior["id"]},
        )
    )
    assert forced["manager_id"] == junior["id"]
    assert [v["rules"][0]["rule"] for v in forced["violations_detected"]] == ["tier_min_level"]
    history = await ok(await client.get(f"/v1/customers/{customer['id']}/history"))
    assert history["items"][0]["note"].startswith("forced: tier_min_level, capacity")
    details = await audit_details(client, "update_customer")
    forced_rules = [d for d in details if d and "forced" in d]
    assert {r["rule"] for r in forced_rules[0]["forced"][0]["rules"]} == {
        "tier_min_level",
        "capacity",
    }
    listed = await violations(client, customer_id=customer["id"])
    assert [v["cause"] for v in listed] == ["forced"]


async def test_a_manager_not_accepting_new_customers_is_refused(client):
    await create_tiers(client)
    full = await create_manager(client, accepting_new=False)
    customer = await create_customer(client)
    body = assert_problem(
        await client.patch(f"/v1/customers/{customer['id']}", json={"manager_id": full["id"]}),
        409,
    )
    assert [v["rule"] for v in body["violations"]] == ["manager_accepting"]
    created = await client.post(
        "/v1/customers", json={"name": "New", "tier": "standard", "manager_id": full["id"]}
    )
    assert assert_problem(created, 409)["violations"][0]["rule"] == "manager_accepting"


async def test_changes_that_make_owners_ineligible_are_listed_and_repaired(client):
    await create_tiers(client)
    mid = await create_manager(client, level=3, capacity=100)
    senior = await create_manager(client, level=5, capacity=100)
    kept = await create_customer(client, tier="long_tail", manager_id=mid["id"])
    raised = await create_customer(client, tier="standard", manager_id=mid["id"])
    by_tier = await create_customer(client, tier="key", manager_id=mid["id"])

    # a customer's tier raised above its owner's level
    out = await ok(await client.patch(f"/v1/customers/{raised['id']}", json={"tier": "strategic"}))
    assert out["violations_detected_count"] == 1
    assert out["violations_detected"][0]["rules"][0]["rule"] == "tier_min_level"
    # a tier's minimum level raised
    tier = await ok(await client.patch("/v1/tiers/key", json={"min_manager_level": 4}))
    assert [v["customer_id"] for v in tier["violations_detected"]] == [by_tier["id"]]
    listed = await violations(client)
    assert {v["customer_id"] for v in listed} == {raised["id"], by_tier["id"]}
    assert {v["cause"] for v in listed} == {"customer_updated", "tier_updated"}
    assert all(v["manager_id"] == mid["id"] and v["detected_at"] for v in listed)
    assert await violations(client, tier="key") == [v for v in listed if v["tier"] == "key"]

    plan = await ok(await client.post("/v1/assignments/plan", json={"mode": "repair"}))
    assert {d["customer_id"] for d in plan["decisions"]} == {raised["id"], by_tier["id"]}
    assert {d["manager_id"] for d in plan["decisions"]} == {senior["id"]}
    applied = await ok(
        await client.post("/v1/assignments/apply", json={"plan_token": plan["plan_token"]})
    )
    assert applied["moved"] == 2
    assert await violations(client) == []
    resolved = await violations(client, state="resolved")
    assert {v["resolution"] for v in resolved} == {"moved"}
    kept_now = await ok(await client.get(f"/v1/customers/{kept['id']}"))
    assert kept_now["manager_id"] == mid["id"], "a compliant customer never moves in a repair"
    history = await ok(await client.get(f"/v1/customers/{raised['id']}/history"))
    assert history["items"][0]["reason"] == "repair"


async def test_a_lower_manager_level_and_a_new_rule_set_are_reported(client):
    await create_tiers(client)
    owner = await create_manager(client, level=3, region="east")
    customer = await create_customer(client, tier="key", region="west", manager_id=owner["id"])
    lowered = await ok(await client.patch(f"/v1/managers/{owner['id']}", json={"level": 2}))
    assert [v["customer_id"] for v in lowered["violations_detected"]] == [customer["id"]]
    restored = await ok(await client.patch(f"/v1/managers/{owner['id']}", json={"level": 3}))
    assert restored["violations_detected"] == []
    assert await violations(client) == []
    assert [v["resolution"] for v in await violations(client, state="resolved")] == ["compliant"]

    rules = await ok(await client.put("/v1/rules", json={"rules": SAME_REGION}))
    assert [v["customer_id"] for v in rules["violations_detected"]] == [customer["id"]]
    [listed] = await violations(client, rule="same_region")
    assert listed["cause"] == "rules_replaced"


async def test_departing_with_customers_needs_a_handover(client):
    await create_tiers(client)
    leaving = await create_manager(client)
    interim = await create_manager(client, level=4)
    await create_manager(client, level=4)
    customers = [await create_customer(client, manager_id=leaving["id"]) for _ in range(3)]

    body = assert_problem(
        await client.patch(f"/v1/managers/{leaving['id']}", json={"status": "departed"}), 409
    )
    assert body["code"] == "manager_owns_customers" and body["customer_count"] == 3
    assert (await ok(await client.get(f"/v1/managers/{leaving['id']}")))["status"] == "active"

    out = await ok(
        await client.patch(
            f"/v1/managers/{leaving['id']}",
            params={"handover": "auto", "interim_manager_id": interim["id"]},
            json={"status": "departed", "team": "alumni"},
        )
    )
    assert out["status"] == "departing" and out["team"] == "alumni"
    handover = await ok(await client.get(f"/v1/handovers/{out['handover_id']}"))
    assert handover["state"] == "planned" and handover["reason"] == "departure"
    for c in customers:
        now = await ok(await client.get(f"/v1/customers/{c['id']}"))
        assert now["manager_id"] == interim["id"]

    empty = await create_manager(client)
    gone = await ok(await client.patch(f"/v1/managers/{empty['id']}", json={"status": "departed"}))
    assert gone["status"] == "departed" and gone["handover_id"] is None


def _ndjson(*rows: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


async def _import(client, resource, *rows, **params):
    return await client.post(
        f"/v1/imports/{resource}",
        content=_ndjson(*rows),
        headers={"Content-Type": "application/x-ndjson"},
        params=params,
    )


async def test_imports_pass_the_same_guard(client, api):
    await create_tiers(client)
    junior = await create_manager(client, level=1, external_ref="m-junior", capacity=50)
    await create_manager(client, level=4, external_ref="m-senior", capacity=50)
    rows = [
        {
            "external_ref": "c-ok",
            "name": "Fine",
            "tier": "long_tail",
            "manager_external_ref": "m-junior",
        },
        {"external_ref": "c-bad", "name": "Big", "tier": "key", "manager_external_ref": "m-junior"},
    ]
    rejected = assert_problem(await _import(client, "customers", *rows), 422)
    assert [e["line"] for e in rejected["errors"]] == [2]
    assert "tier 'key' needs level" in rejected["errors"][0]["msg"]
    assert (await ok(await client.get("/v1/customers")))["items"] == [], "nothing applied"

    report = await ok(await _import(client, "customers", *rows, mode="best_effort"))
    assert report["owners_changed"] == 1 and report["owners_refused"] == 1
    assert [(e["line"], e["type"]) for e in report["errors"]] == [(2, "rule_violation")]
    stored = {c["external_ref"]: c for c in (await ok(await client.get("/v1/customers")))["items"]}
    assert stored["c-ok"]["manager_id"] == junior["id"] and stored["c-bad"]["manager_id"] is None

    crm = await api.client("integration")
    assert_problem(await _import(crm, "customers", rows[1], force="true"), 403)
    forced = await ok(await _import(client, "customers", rows[1], force="true"))
    assert forced["owners_changed"] == 1, forced
    assert forced["violations_detected_count"] == 1, (forced, await violations(client, state="all"))
    history = await ok(await client.get(f"/v1/customers/{stored['c-bad']['id']}/history"))
    assert history["items"][0]["note"] == "forced: tier_min_level"

    # a tier raised by an import is reported like a PATCH
    raised = await ok(
        await _import(
            client, "customers", {"external_ref": "c-ok", "name": "Fine", "tier": "standard"}
        )
    )
    assert [v["customer_id"] for v in raised["violations_detected"]] == [stored["c-ok"]["id"]]


async def test_importing_a_departed_manager_who_owns_customers_is_refused(client):
    await create_tiers(client)
    owner = await create_manager(client, external_ref="m-1")
    await create_customer(client, manager_id=owner["id"])
    row = {
        "external_ref": "m-1",
        "name": owner["name"],
        "email": owner["email"],
        "level": 3,
        "capacity": 20,
        "status": "departed",
    }
    body = assert_problem(await _import(client, "managers", row), 422)
    assert body["errors"][0]["type"] == "manager_owns_customers"
    lowered = await ok(await _import(client, "managers", {**row, "status": "active", "level": 1}))
    assert lowered["violations_detected_count"] == 1


async def test_check_finds_no_unreported_violation_after_api_writes(client, api):
    from app.check import find_violations

    await create_tiers(client)
    a = await create_manager(client, level=3, region="east")
    b = await create_manager(client, level=5, region="west")
    c1 = await create_customer(client, tier="key", region="east", manager_id=a["id"])
    c2 = await create_customer(client, tier="standard", region="west", manager_id=b["id"])
    await ok(await client.patch(f"/v1/customers/{c1['id']}", json={"tier": "strategic"}))
    await ok(await client.patch(f"/v1/managers/{b['id']}", json={"level": 1}))
    await ok(await client.put("/v1/rules", json={"rules": SAME_REGION}))
    await ok(await client.patch(f"/v1/customers/{c2['id']}", json={"region": "east"}))
    async with api.factory() as session:
        assert await find_violations(session) == []
    listed = {v["customer_id"]: {r["rule"] for r in v["rules"]} for v in await violations(client)}
    assert listed == {c1["id"]: {"tier_min_level"}, c2["id"]: {"tier_min_level", "same_region"}}


async def test_round_robin_continues_across_separate_calls(client):
    await create_tiers(client)
    managers = sorted(
        [(await create_manager(client, capacity=100))["id"] for _ in range(3)], key=str
    )
    pool = [await create_customer(client) for _ in range(4)]
    got = []
    for c in pool:
        out = await ok(
            await client.post(f"/v1/customers/{c['id']}/assign", json={"strategy": "round_robin"})
        )
        assert out["applied"]
        got.append(out["decision"]["manager_id"])
    assert got == [*managers, managers[0]]
    # a dry run shows the next turn without taking it
    extra = await create_customer(client)
    for _ in range(2):
        dry = await ok(
            await client.post(
                f"/v1/customers/{extra['id']}/assign",
                json={"strategy": "round_robin", "dry_run": True},
            )
        )
        assert dry["decision"]["manager_id"] == managers[1]


async def test_a_signed_webhook_that_makes_an_owner_ineligible_is_recorded(
    committed_client, factory
):
    from tests.integration.test_webhooks_inbound import _process_all, source, standard_request

    client = committed_client
    src = await source(client, "crm", "standard")
    await create_tiers(client)
    owner = await create_manager(client, level=2, capacity=40)
    customer = await create_customer(client, external_ref="crm-1", manager_id=owner["id"])
    body, headers = standard_request(
        src["secret"],
        {
            "type": "customer.tier_changed",
            "timestamp": "2026-12-01T09:00:00Z",
            "data": {"external_ref": "crm-1", "tier": "key"},
        },
    )
    await ok(await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202)
    assert await _process_all(factory) == ["processed"]
    [listed] = await violations(client)
    assert listed["customer_id"] == customer["id"] and listed["cause"] == "customer_updated"
    assert listed["actor"] == "webhook:crm"
    [event] = (await ok(await client.get("/v1/webhooks/inbound-events")))["items"]
    assert event["result"]["owner_eligible"] is False
    assert event["result"]["violated_rules"] == ["tier_min_level"]
    assert event["result"]["applied"] is False

    # a source that applies tier changes re-places the customer through the engine
    await ok(
        await client.patch(f"/v1/webhook-sources/{src['id']}", json={"tier_change_action": "apply"})
    )
    senior = await create_manager(client, level=4, capacity=40)
    body, headers = standard_request(
        src["secret"],
        {
            "type": "customer.tier_changed",
            "timestamp": "2026-12-01T09:05:00Z",
            "data": {"external_ref": "crm-1", "tier": "key"},
        },
    )
    await ok(await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202)
    assert await _process_all(factory) == ["processed"]
    now = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert now["manager_id"] == senior["id"]
    assert await violations(client) == []


@pytest.mark.parametrize("seed", range(4))
async def test_random_api_writes_leave_no_unreported_violation(client, api, seed):
    """Property: whatever sequence of ordinary writes, every owner that breaks a hard rule
    was reported by the write that caused it (``baton check`` finds nothing unrecorded)."""
    from app.check import find_violations

    rnd = random.Random(seed)
    await create_tiers(client)
    tiers = ["strategic", "key", "standard", "long_tail"]
    regions = ["east", "west"]
    managers = [
        await create_manager(
            client, level=rnd.randint(1, 5), capacity=60, region=rnd.choice(regions)
        )
        for _ in range(4)
    ]
    customers = [
        await create_customer(client, tier="long_tail", region=rnd.choice(regions))
        for _ in range(8)
    ]
    for _ in range(30):
        op = rnd.randrange(7)
        c = rnd.choice(customers)["id"]
        m = rnd.choice(managers)["id"]
        if op == 0:
            r = await client.patch(f"/v1/customers/{c}", json={"manager_id": m})
        elif op == 1:
            r = await client.patch(
                f"/v1/customers/{c}", params={"force": "true"}, json={"manager_id": m}
            )
        elif op == 2:
            r = await client.patch(f"/v1/customers/{c}", json={"tier": rnd.choice(tiers)})
        elif op == 3:
            r = await client.patch(f"/v1/managers/{m}", json={"level": rnd.randint(1, 5)})
        elif op == 4:
            r = await client.patch(
                f"/v1/tiers/{rnd.choice(tiers)}", json={"min_manager_level": rnd.randint(1, 5)}
            )
        elif op == 5:
            rules = SAME_REGION if rnd.random() < 0.5 else {"eligibility": []}
            r = await client.put("/v1/rules", json={"rules": rules})
        else:
            r = await client.patch(f"/v1/customers/{c}", json={"region": rnd.choice(regions)})
        assert r.status_code in (200, 409), r.text
        if r.status_code == 409:
            assert r.json()["code"] == "rule_violation"
        async with api.factory() as session:
            assert await find_violations(session) == [], (op, r.json())


async def test_a_forced_handover_override_is_recorded_when_executed(client):
    await create_tiers(client)
    leaving = await create_manager(client, level=4)
    junior = await create_manager(client, level=1, capacity=50)
    await create_manager(client, level=4, capacity=50)
    key = await create_customer(client, tier="key", manager_id=leaving["id"])
    h = await ok(
        await client.post(
            "/v1/handovers", json={"from_manager_id": leaving["id"], "reason": "departure"}
        ),
        201,
    )
    await ok(await client.post(f"/v1/handovers/{h['id']}/plan"))
    item = f"/v1/handovers/{h['id']}/items/{key['id']}"
    refused = assert_problem(await client.patch(item, json={"manager_id": junior["id"]}), 409)
    assert [v["rule"] for v in refused["violations"]] == ["tier_min_level"]
    await ok(
        await client.patch(
            item, json={"manager_id": junior["id"], "force": True, "reason": "knows them best"}
        )
    )
    await ok(await client.post(f"/v1/handovers/{h['id']}/approve"))
    await ok(await client.post(f"/v1/handovers/{h['id']}/execute"))
    [listed] = await violations(client)
    assert (listed["customer_id"], listed["manager_id"], listed["cause"]) == (
        key["id"],
        junior["id"],
        "handover",
    )


async def test_a_rule_on_workload_is_checked_on_every_owners_real_workload(client):
    """A rule that reads a manager's load holds owners to their workload as the guard reads it
    (the compliance check had counted every owner's load as 0, so such a rule never failed)."""
    await create_tiers(client)
    full = await create_manager(client, capacity=4)
    roomy = await create_manager(client, capacity=40)
    crowded = [await create_customer(client, manager_id=full["id"]) for _ in range(2)]
    await create_customer(client, manager_id=roomy["id"])
    not_overloaded = {
        "eligibility": [
            {
                "id": "not_overloaded",
                "conditions": [{"field": "manager.utilization", "op": "lte", "value": 0.9}],
            }
        ]
    }
    rules = await ok(await client.put("/v1/rules", json={"rules": not_overloaded}))
    assert sorted(v["customer_id"] for v in rules["violations_detected"]) == sorted(
        c["id"] for c in crowded
    )
    assert {v["manager_id"] for v in await violations(client, rule="not_overloaded")} == {
        full["id"]
    }


async def test_a_satisfaction_score_a_rule_reads_is_checked_like_a_patch_of_it(client):
    """A measurement that changes a customer's current score is checked against the rules that
    read it, as a PATCH of the score is: an owner the rule no longer allows is recorded."""
    await create_tiers(client)
    junior = await create_manager(client, level=2)
    customer = await create_customer(client, manager_id=junior["id"])
    unhappy_to_seniors = {
        "eligibility": [
            {
                "id": "unhappy_to_seniors",
                "when": [{"field": "customer.satisfaction", "op": "lt", "value": 5}],
                "conditions": [{"field": "manager.level", "op": "gte", "value": 4}],
            }
        ]
    }
    await ok(await client.put("/v1/rules", json={"rules": unhappy_to_seniors}))
    assert await violations(client) == []
    scored = await client.post(f"/v1/customers/{customer['id']}/satisfaction", json={"score": "3"})
    await ok(scored, 201)
    [found] = await violations(client, rule="unhappy_to_seniors")
    assert (found["customer_id"], found["manager_id"]) == (customer["id"], junior["id"])
    await ok(
        await client.post(f"/v1/customers/{customer['id']}/satisfaction", json={"score": "8"}),
        201,
    )
    assert await violations(client) == []
