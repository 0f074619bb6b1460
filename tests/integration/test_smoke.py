from tests.integration.factories import create_customer, create_manager, create_tiers


async def test_manual_assignment_roundtrip(client):
    await create_tiers(client)
    m = await create_manager(client)
    c = await create_customer(client, manager_id=m["id"])
    assert c["manager_id"] == m["id"]
    r = await client.get(f"/v1/managers/{m['id']}")
    assert r.json()["workload"] == 2
