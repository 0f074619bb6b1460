"""A rebalance limited to a team or a region moves only that team's or region's customers,
and only between its managers."""

import pytest

from tests.integration.factories import create_customer, create_manager, create_tiers, ok


@pytest.mark.parametrize("scope", ["team", "region"])
async def test_an_applied_rebalance_stays_within_its_scope(client, scope):
    await create_tiers(client)
    managers = {}
    for group in ("a", "b"):
        fields = {scope: group}
        busy = await create_manager(client, level=3, capacity=20, **fields)
        idle = await create_manager(client, level=3, capacity=20, **fields)
        owned = [await create_customer(client, manager_id=busy["id"]) for _ in range(8)]
        managers[group] = (busy, idle, owned)

    body = {"dry_run": False, "target_utilization": 0.5, "min_days_since_move": 0, scope: "a"}
    plan = await ok(await client.post("/v1/rebalance", json=body))

    busy, idle, owned = managers["a"]
    assert plan["moved"] == 3, "16 of 20 down to 10: three weight-2 customers"
    owners = [(await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] for c in owned]
    assert owners.count(idle["id"]) == 3 and owners.count(busy["id"]) == 5
    busy, idle, owned = managers["b"]
    for c in owned:
        assert (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] == busy["id"]
