"""The API as clients meet it: created resources say where they are."""

from tests.integration.factories import STANDARD_TIERS, ok


async def test_every_created_resource_has_a_location_that_reads_it(client):
    tier = await ok(await client.post("/v1/tiers", json=STANDARD_TIERS[0]), 201)
    response = await client.post("/v1/tiers", json=STANDARD_TIERS[1])
    assert response.status_code == 201
    assert response.headers["Location"] == "/v1/tiers/key"
    assert (await client.get(response.headers["Location"])).json()["code"] == "key"
    created = await client.post("/v1/customers", json={"name": "Located Ltd", "tier": tier["code"]})
    assert created.status_code == 201
    assert created.headers["Location"] == f"/v1/customers/{created.json()['id']}"
    assert (await client.get(created.headers["Location"])).json()["name"] == "Located Ltd"
