"""Workloads come from per-manager, per-tier counts kept by triggers on customers: every way
a customer can change moves the counts in the same transaction, and ``baton check`` notices
counts that drifted from a recount."""

from sqlalchemy import text

from app.check import find_violations
from app.managers.repository import fold_loads
from tests.integration.factories import create_customer, create_manager, create_tiers, ok


async def _workload(client, manager):
    body = await ok(await client.get(f"/v1/managers/{manager['id']}"))
    return body["workload"], body["customer_count"]


async def _recount_violations(api):
    async with api.factory() as session:
        found = await find_violations(session)
    return [v for v in found if v.invariant == "manager_loads_match_a_recount"]


async def test_workloads_follow_every_kind_of_change(api, client):
    await create_tiers(client)  # strategic 8, key 4, standard 2, long_tail 1
    first = await create_manager(client, level=5, capacity=100)
    second = await create_manager(client, level=5, capacity=100)
    key = await create_customer(client, tier="key", manager_id=first["id"])
    standard = await create_customer(client, tier="standard", manager_id=first["id"])
    pooled = await create_customer(client, tier="strategic")
    assert await _workload(client, first) == (6, 2)

    url = "/v1/customers/{}"
    await ok(await client.patch(url.format(standard["id"]), json={"manager_id": second["id"]}))
    assert await _workload(client, first) == (4, 1)
    assert await _workload(client, second) == (2, 1)

    await ok(await client.patch(url.format(key["id"]), json={"tier": "strategic"}))
    assert await _workload(client, first) == (8, 1)

    await ok(await client.patch(url.format(key["id"]), json={"status": "churned"}))
    assert await _workload(client, first) == (0, 0)
    await ok(await client.patch(url.format(key["id"]), json={"status": "active"}))
    assert await _workload(client, first) == (8, 1)

    placed = await ok(await client.post("/v1/assignments/apply", json={"review": "skip"}))
    assert placed["moved"] == 1  # the pooled strategic customer
    owner = (await ok(await client.get(url.format(pooled["id"]))))["manager_id"]
    assert owner in (first["id"], second["id"])
    total = sum([(await _workload(client, m))[0] for m in (first, second)])
    assert total == 8 + 2 + 8

    await ok(await client.patch("/v1/tiers/strategic", json={"weight": 10}))
    total = sum([(await _workload(client, m))[0] for m in (first, second)])
    assert total == 10 + 2 + 10  # a weight change needs no recount

    fresh = await create_customer(client, tier="long_tail")
    assert (await client.delete(url.format(fresh["id"]))).status_code == 204
    assert await _recount_violations(api) == []

    # Each change appended rows; the sweep folds them into one per (manager, tier) it counts.
    before = [await _workload(client, m) for m in (first, second)]
    async with api.factory() as session:
        appended = await session.scalar(text("SELECT count(*) FROM manager_loads"))
        left = await fold_loads(session)
        pairs = await session.scalar(text("SELECT count(*) FROM manager_loads"))
        await session.commit()
    assert appended > pairs == left
    assert [await _workload(client, m) for m in (first, second)] == before
    assert await _recount_violations(api) == []


async def test_the_check_reports_counts_that_drifted(api, client):
    await create_tiers(client)
    manager = await create_manager(client, level=5, capacity=100)
    await create_customer(client, tier="key", manager_id=manager["id"])
    assert await _recount_violations(api) == []
    async with api.factory() as session:
        await session.execute(text("UPDATE manager_loads SET customers = customers + 1"))
        await session.commit()
    drifted = await _recount_violations(api)
    assert drifted and drifted[0].sample == [manager["id"]]
