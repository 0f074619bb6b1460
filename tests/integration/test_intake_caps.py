"""Intake caps: a manager receives at most so many new customers a day and a week, counted from
the ledger; the engine passes over a capped manager and the guard refuses a manual move."""

from __future__ import annotations

from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


async def test_a_capped_manager_is_skipped_and_refused_until_the_cap_allows(client, api):
    await create_tiers(client)
    capped = await create_manager(client, max_new_per_day=1, capacity=100)
    assert capped["max_new_per_day"] == 1 and capped["max_new_per_week"] is None
    first, second, third = [await create_customer(client) for _ in range(3)]

    await ok(await client.patch(f"/v1/customers/{first['id']}", json={"manager_id": capped["id"]}))
    refused = assert_problem(
        await client.patch(f"/v1/customers/{second['id']}", json={"manager_id": capped["id"]}),
        409,
    )
    assert [v["rule"] for v in refused["violations"]] == ["intake_cap"]

    # the engine falls back on whoever has room, with the reason shown for the capped one
    fallback = await create_manager(client, capacity=5)
    placed = await ok(await client.post(f"/v1/customers/{second['id']}/assign", json={}))
    assert placed["decision"]["manager_id"] == fallback["id"]

    # raising the cap lets one more in; a batch plan gives the capped manager no more than that
    await ok(await client.patch(f"/v1/managers/{capped['id']}", json={"max_new_per_day": 2}))
    await ok(await client.patch(f"/v1/managers/{fallback['id']}", json={"capacity": 100}))
    fourth = await create_customer(client)
    plan = await ok(
        await client.post(
            "/v1/assignments/plan",
            json={"strategy": "balanced", "customer_ids": [third["id"], fourth["id"]]},
        )
    )
    to_capped = [d for d in plan["decisions"] if d["manager_id"] == capped["id"]]
    assert len(to_capped) <= 1


async def test_a_week_cap_counts_the_last_seven_days_and_a_zero_cap_closes_intake(client, api):
    await create_tiers(client)
    closed = await create_manager(client, max_new_per_week=0)
    customer = await create_customer(client)
    body = assert_problem(
        await client.patch(f"/v1/customers/{customer['id']}", json={"manager_id": closed["id"]}),
        409,
    )
    assert [v["rule"] for v in body["violations"]] == ["intake_cap"]
    pooled = await ok(
        await client.post(f"/v1/customers/{customer['id']}/assign", json={"dry_run": True})
    )
    assert pooled["decision"]["manager_id"] is None
    assert_problem(
        await client.post(
            "/v1/managers",
            json={
                "name": "N",
                "email": "neg@example.com",
                "level": 3,
                "capacity": 5,
                "max_new_per_day": -1,
            },
        ),
        422,
    )


async def test_tier_caps_send_the_overflow_to_the_fallback_owner_or_the_pool(client, api):
    await create_tiers(client)
    managers = [await create_manager(client, capacity=100) for _ in range(2)]
    fallback = await create_manager(client, capacity=100)
    rules = {
        "eligibility": [],
        "preferences": [],
        "placement": {
            "tier_caps": {"standard": {"max_new_per_day": 1, "fallback_manager_id": fallback["id"]}}
        },
    }
    await ok(await client.put("/v1/rules", json={"rules": rules}))
    placed = []
    for _ in range(3):  # one new standard customer each, the fallback owner included
        customer = await create_customer(client)
        placed.append(
            (await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={})))[
                "decision"
            ]
        )
    assert sorted(d["manager_id"] for d in placed) == sorted(m["id"] for m in [*managers, fallback])
    # everyone is capped for the tier: the overflow goes to the fallback owner
    overflow = await create_customer(client)
    decision = (await ok(await client.post(f"/v1/customers/{overflow['id']}/assign", json={})))[
        "decision"
    ]
    assert decision["manager_id"] == fallback["id"]
    assert decision["reasons"] == ["fallback_owner", "intake_cap"]
    # the guard agrees: a manual move to a capped manager is refused, to the fallback allowed
    another = await create_customer(client)
    refused = assert_problem(
        await client.patch(
            f"/v1/customers/{another['id']}", json={"manager_id": managers[0]["id"]}
        ),
        409,
    )
    assert [v["rule"] for v in refused["violations"]] == ["intake_cap"]
    await ok(
        await client.patch(f"/v1/customers/{another['id']}", json={"manager_id": fallback["id"]})
    )
    # another tier is not capped
    key = await create_customer(client, tier="long_tail")
    assert (await ok(await client.post(f"/v1/customers/{key['id']}/assign", json={})))["decision"][
        "manager_id"
    ]

    # without a fallback owner, the overflow waits in the pool with the reason
    rules["placement"]["tier_caps"]["standard"]["fallback_manager_id"] = None
    await ok(await client.put("/v1/rules", json={"rules": rules}))
    pooled = await create_customer(client)
    decision = (await ok(await client.post(f"/v1/customers/{pooled['id']}/assign", json={})))[
        "decision"
    ]
    assert decision["manager_id"] is None and decision["reasons"] == ["intake_cap"]


async def test_an_import_holds_the_caps_across_its_rows_as_separate_requests_do(client, api):
    """One file naming the same owner for many new customers: the owner's own day cap and the
    rule set's tier cap count the rows the import has already given them."""
    await create_tiers(client)
    own_cap = await create_manager(client, capacity=100, max_new_per_day=2)
    tier_capped = await create_manager(client, capacity=100)
    rules = {
        "eligibility": [],
        "preferences": [],
        "placement": {"tier_caps": {"key": {"max_new_per_day": 1}}},
    }
    await ok(await client.put("/v1/rules", json={"rules": rules}))
    rows = [f"cap-s-{i},Standard {i},standard,{own_cap['id']}" for i in range(4)]
    rows += [f"cap-k-{i},Key {i},key,{tier_capped['id']}" for i in range(3)]
    body = "external_ref,name,tier,manager_id\n" + "\n".join(rows) + "\n"
    report = await ok(
        await client.post(
            "/v1/imports/customers",
            params={"mode": "best_effort"},
            content=body,
            headers={"content-type": "text/csv"},
        )
    )
    assert report["owners_refused"] == 4, report
    refused = {e["line"]: e for e in report["errors"]}
    assert sorted(refused) == [4, 5, 7, 8], refused  # standard rows 3-4, key rows 2-3
    assert all("intake caps" in e["msg"] for e in refused.values()), refused
    owners: dict[str, str | None] = {}
    for ref in [f"cap-s-{i}" for i in range(4)] + [f"cap-k-{i}" for i in range(3)]:
        found = await ok(await client.get(f"/v1/customers/by-ref/{ref}"))
        owners[ref] = found["manager_id"]
    assert [owners[f"cap-s-{i}"] for i in range(4)] == [own_cap["id"]] * 2 + [None] * 2
    assert sum(owners[f"cap-k-{i}"] == tier_capped["id"] for i in range(3)) == 1
