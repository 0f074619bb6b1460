"""The public pool: a quiet customer is warned, then reclaimed by the sweep (clock chosen by the
test); claims are checked by the placement guard, the daily claim cap and the cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.db.session import session_scope
from app.pool import service as pool
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)

POLICY = {"inactive_days": 30, "warning_days": 3, "cooldown_days": 14, "daily_claim_cap": 1}


async def sweep(api, now):
    async with session_scope(api.factory) as session:
        return await pool.sweep_reclaims(session, now=now)


async def events(api, type_):
    async with session_scope(api.factory) as session:
        rows = await session.execute(
            text("SELECT payload FROM webhook_events WHERE type = :t ORDER BY created_at"),
            {"t": type_},
        )
        return [r[0]["data"] for r in rows]


async def test_warning_then_reclaim_then_claim_with_cap_and_cooldown(client, api, allow_loopback):
    await create_tiers(client)
    await ok(
        await client.post(
            "/v1/webhook-subscriptions",
            json={
                "url": "http://127.0.0.1:9/hook",
                "event_types": ["customer.reclaim_warning", "customer.unassigned"],
            },
        ),
        201,
    )
    await ok(await client.put("/v1/pool/policies/standard", json=POLICY))
    owner = await create_manager(client)
    quiet = await create_customer(client, manager_id=owner["id"])
    busy = await create_customer(client, manager_id=owner["id"])
    pinned = await create_customer(client, manager_id=owner["id"], pinned=True)
    other_tier = await create_customer(client, manager_id=owner["id"], tier="long_tail")
    now = datetime.now(UTC)
    await ok(
        await client.post(
            f"/v1/customers/{busy['id']}/activities",
            json={"kind": "call", "at": (now + timedelta(days=20)).isoformat()},
        ),
        201,
    )

    # day 28: quiet and busy? only quiet enters its warning period (30 - 3 days)
    assert await sweep(api, now + timedelta(days=28)) == pool.SweepResult(warned=1, reclaimed=0)
    [warning] = await events(api, "customer.reclaim_warning")
    assert warning["customer_id"] == quiet["id"] and warning["manager_id"] == owner["id"]
    # warned once, not at every sweep
    assert await sweep(api, now + timedelta(days=29)) == pool.SweepResult(warned=0, reclaimed=0)

    # the dry run shows what the sweep at day 31 will reclaim: not yet (warned 3 days before)
    at = (now + timedelta(days=31, hours=1)).isoformat()
    preview = await ok(await client.get("/v1/pool/reclaims", params={"at": at}))
    assert [c["customer_id"] for c in preview["customers"]] == [quiet["id"]]
    assert assert_problem(await client.get("/v1/pool/reclaims", params={"at": "1767225600"}), 422)
    done = await sweep(api, now + timedelta(days=31, hours=1))
    assert done.reclaimed == 1
    assert (await ok(await client.get(f"/v1/customers/{quiet['id']}")))["manager_id"] is None
    for kept in (busy, pinned, other_tier):
        assert (await ok(await client.get(f"/v1/customers/{kept['id']}")))["manager_id"]
    [unassigned] = await events(api, "customer.unassigned")
    assert unassigned["customer_id"] == quiet["id"] and unassigned["reason"] == "reclaimed_inactive"
    async with session_scope(api.factory) as session:
        end = await session.scalar(
            text("SELECT end_reason FROM assignments WHERE customer_id = :c"), {"c": quiet["id"]}
        )
    assert end == "reclaimed_inactive"

    # the pool says why it waits
    waiting = await ok(await client.get("/v1/pool/customers"))
    assert [(w["customer_id"], w["reason"]) for w in waiting["items"]] == [
        (quiet["id"], "reclaimed_inactive")
    ]

    # the former owner is in cooldown
    cooldown = await client.post(
        f"/v1/customers/{quiet['id']}/claim", json={"manager_id": owner["id"]}
    )
    assert assert_problem(cooldown, 409)["code"] == "claim_cooldown"
    # the placement guard decides the rest
    junior = await create_manager(client, level=1)
    refused = await client.post(
        f"/v1/customers/{quiet['id']}/claim", json={"manager_id": junior["id"]}
    )
    body = assert_problem(refused, 409)
    assert body["code"] == "rule_violation"
    assert [v["rule"] for v in body["violations"]] == ["tier_min_level"]
    taker = await create_manager(client)
    claimed = await ok(
        await client.post(f"/v1/customers/{quiet['id']}/claim", json={"manager_id": taker["id"]})
    )
    assert claimed["manager_id"] == taker["id"]
    history = await ok(await client.get(f"/v1/customers/{quiet['id']}/history"))
    assert "claim" in [row["reason"] for row in history["items"]]
    again = await client.post(
        f"/v1/customers/{quiet['id']}/claim", json={"manager_id": taker["id"]}
    )
    assert assert_problem(again, 409)["code"] == "not_in_pool"

    # the daily claim cap: one a day for this tier
    second = await create_customer(client)
    capped = await client.post(
        f"/v1/customers/{second['id']}/claim", json={"manager_id": taker["id"]}
    )
    body = assert_problem(capped, 409)
    assert body["code"] == "claim_cap_reached" and body["cap"] == 1


async def test_customers_in_an_open_handover_are_never_reclaimed(client, api):
    await create_tiers(client)
    await ok(
        await client.put(
            "/v1/pool/policies/standard", json={"inactive_days": 10, "warning_days": 0}
        )
    )
    owner = await create_manager(client)
    successor = await create_manager(client)
    handed = await create_customer(client, manager_id=owner["id"])
    free = await create_customer(client, manager_id=successor["id"])
    await ok(
        await client.post(
            "/v1/handovers",
            json={"from_manager_id": owner["id"], "reason": "departure", "strategy": "balanced"},
        ),
        201,
    )
    later = datetime.now(UTC) + timedelta(days=11)
    preview = await ok(await client.get("/v1/pool/reclaims", params={"at": later.isoformat()}))
    assert [c["customer_id"] for c in preview["customers"]] == [free["id"]]
    assert (await sweep(api, later)).reclaimed == 1
    assert (await ok(await client.get(f"/v1/customers/{handed['id']}")))["manager_id"] == owner[
        "id"
    ]


async def test_policies_are_listed_replaced_and_removed(client, api):
    await create_tiers(client)
    put = await ok(await client.put("/v1/pool/policies/key", json={"inactive_days": 60}))
    assert put["tier"] == "key" and put["warning_days"] == 0 and put["daily_claim_cap"] is None
    again = await ok(
        await client.put("/v1/pool/policies/key", json={"inactive_days": 45, "warning_days": 5})
    )
    assert again["inactive_days"] == 45 and again["version"] == 2
    listed = await ok(await client.get("/v1/pool/policies"))
    assert [p["tier"] for p in listed["items"]] == ["key"]
    assert_problem(
        await client.put("/v1/pool/policies/key", json={"inactive_days": 5, "warning_days": 5}),
        422,
    )
    assert_problem(await client.put("/v1/pool/policies/nope", json={"inactive_days": 5}), 404)
    await ok(await client.delete("/v1/pool/policies/key"), 204)
    assert_problem(await client.get("/v1/pool/policies/key"), 404)


async def test_a_first_touch_missed_is_escalated_once_per_owner(client, api, allow_loopback):
    await create_tiers(client)
    await ok(
        await client.post(
            "/v1/webhook-subscriptions",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["customer.first_touch_missed"]},
        ),
        201,
    )
    await ok(
        await client.put(
            "/v1/pool/policies/standard", json={"inactive_days": 30, "first_touch_hours": 24}
        )
    )
    owner = await create_manager(client)
    untouched = await create_customer(client, manager_id=owner["id"])
    touched = await create_customer(client, manager_id=owner["id"])
    now = datetime.now(UTC)
    await ok(
        await client.post(
            f"/v1/customers/{touched['id']}/activities",
            json={"kind": "call", "at": (now + timedelta(hours=2)).isoformat()},
        ),
        201,
    )
    assert (await sweep(api, now + timedelta(hours=23))).first_touch_missed == 0
    assert (await sweep(api, now + timedelta(hours=25))).first_touch_missed == 1
    assert (await sweep(api, now + timedelta(hours=26))).first_touch_missed == 0
    [missed] = await events(api, "customer.first_touch_missed")
    assert missed["customer_id"] == untouched["id"] and missed["manager_id"] == owner["id"]


async def test_a_batch_claim_decides_each_customer_and_counts_the_cap(client, api):
    await create_tiers(client)
    await ok(
        await client.put(
            "/v1/pool/policies/standard", json={"inactive_days": 30, "daily_claim_cap": 2}
        )
    )
    taker = await create_manager(client)
    other = await create_manager(client)
    first, second, third = [await create_customer(client) for _ in range(3)]
    owned = await create_customer(client, manager_id=other["id"])
    crm = await api.client("integration")
    denied = await crm.post(
        "/v1/pool/claims", json={"manager_id": taker["id"], "customer_ids": [first["id"]]}
    )
    assert_problem(denied, 403)
    out = await ok(
        await client.post(
            "/v1/pool/claims",
            json={
                "manager_id": taker["id"],
                "customer_ids": [first["id"], owned["id"], second["id"], third["id"]],
            },
        )
    )
    assert [(r["claimed"], r["code"]) for r in out["results"]] == [
        (True, None),
        (False, "not_in_pool"),
        (True, None),
        (False, "claim_cap_reached"),
    ]
    assert (await ok(await client.get(f"/v1/customers/{second['id']}")))["manager_id"] == taker[
        "id"
    ]
    assert (await ok(await client.get(f"/v1/customers/{third['id']}")))["manager_id"] is None
    waiting = await ok(await client.get("/v1/pool/customers"))
    assert [w["reason"] for w in waiting["items"]] == ["never_placed"]


async def test_a_first_touch_missed_is_re_placed_without_its_owner_when_the_policy_says_so(
    client, api
):
    await create_tiers(client)
    policy = {"inactive_days": 30, "first_touch_hours": 24, "first_touch_action": "replace"}
    stored = await ok(await client.put("/v1/pool/policies/standard", json=policy))
    assert stored["first_touch_action"] == "replace"
    owner = await create_manager(client, capacity=100)
    colleague = await create_manager(client, capacity=100, accepting_new=False)
    stuck = await create_customer(client, manager_id=owner["id"])
    touched = await create_customer(client, manager_id=owner["id"])
    now = datetime.now(UTC)
    await ok(
        await client.post(
            f"/v1/customers/{touched['id']}/activities",
            json={"kind": "call", "at": (now + timedelta(hours=2)).isoformat()},
        ),
        201,
    )
    # nobody else may take it: escalated, and it stays with its owner
    done = await sweep(api, now + timedelta(hours=25))
    assert (done.first_touch_missed, done.first_touch_replaced) == (1, 0)
    assert (await ok(await client.get(f"/v1/customers/{stuck['id']}")))["manager_id"] == (
        owner["id"]
    )

    # with a colleague taking new customers, the next one missed goes to them
    await ok(await client.patch(f"/v1/managers/{colleague['id']}", json={"accepting_new": True}))
    untouched = await create_customer(client, manager_id=owner["id"])
    done = await sweep(api, datetime.now(UTC) + timedelta(hours=25))
    assert (done.first_touch_missed, done.first_touch_replaced) == (1, 1)
    moved = await ok(await client.get(f"/v1/customers/{untouched['id']}"))
    assert moved["manager_id"] == colleague["id"]
    history = (await ok(await client.get(f"/v1/customers/{untouched['id']}/history")))["items"]
    assert [h["reason"] for h in history if h["ended_at"] is None] == ["first_touch_missed"]
    assert (await ok(await client.get(f"/v1/customers/{touched['id']}")))["manager_id"] == (
        owner["id"]
    )
