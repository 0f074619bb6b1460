"""Weighted round robin with memory: the shares hold across separate placements, the counters
start again each period, and only the rotation's own placements count."""

from __future__ import annotations

from sqlalchemy import text

from app.db.session import session_scope
from tests.integration.factories import create_customer, create_manager, create_tiers, ok

WRR = {"strategy": "weighted_round_robin"}


async def put_placement(client, **placement):
    body = {"rules": {"eligibility": [], "preferences": [], "placement": placement}}
    return await ok(await client.put("/v1/rules", json=body))


async def assign(client, customer):
    placed = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json=WRR))
    assert placed["applied"] is True
    return placed["decision"]["manager_id"]


async def test_rotation_keeps_the_weights_across_calls_and_ignores_manual_moves(client, api):
    await create_tiers(client)
    await put_placement(client, rotation_period="day")
    heavy = await create_manager(client, capacity=100, rotation_weight=2)
    assert heavy["rotation_weight"] == 2
    light = [await create_manager(client, capacity=100) for _ in range(2)]
    got = [await assign(client, await create_customer(client)) for _ in range(8)]
    assert got.count(heavy["id"]) == 4
    assert [got.count(m["id"]) for m in light] == [2, 2]

    # the plan reports how fair the period is after it (Jain's index of received per weight:
    # 5/2, 2/1, 2/1 once the heavy one takes the next)
    plan = await ok(
        await client.post(
            "/v1/assignments/plan",
            json={**WRR, "customer_ids": [(await create_customer(client))["id"]]},
        )
    )
    assert abs(plan["metrics"]["fairness"] - 6.5**2 / (3 * (2.5**2 + 4 + 4))) < 1e-9
    assert plan["decisions"][0]["manager_id"] == heavy["id"]
    assert plan["decisions"][0]["reasons"] == ["weighted_round_robin"]

    # a manual move to the manager whose turn it is does not count as their turn
    await ok(
        await client.patch(
            f"/v1/customers/{(await create_customer(client))['id']}",
            json={"manager_id": heavy["id"]},
        )
    )
    assert await assign(client, await create_customer(client)) == heavy["id"]

    # an absent manager is skipped, and a capped one
    await ok(await client.patch(f"/v1/managers/{heavy['id']}", json={"max_new_per_day": 0}))
    nxt = await assign(client, await create_customer(client))
    assert nxt in {m["id"] for m in light}


async def test_rotation_counters_start_again_each_period(client, api):
    await create_tiers(client)
    await put_placement(client, rotation_period="week")
    first, second = sorted(
        [await create_manager(client, capacity=100) for _ in range(2)], key=lambda m: m["id"]
    )
    got = [await assign(client, await create_customer(client)) for _ in range(3)]
    assert got == [first["id"], second["id"], first["id"]]
    # within the period the next turn is the second's
    dry = await ok(
        await client.post(
            f"/v1/customers/{(await create_customer(client))['id']}/assign",
            json={**WRR, "dry_run": True},
        )
    )
    assert dry["decision"]["manager_id"] == second["id"]

    # a week later the counters of last week no longer count: the turn starts over
    async with session_scope(api.factory) as session:
        await session.execute(
            text("UPDATE rotation_counters SET period_start = period_start - interval '7 days'")
        )
    assert await assign(client, await create_customer(client)) == first["id"]
