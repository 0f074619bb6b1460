"""Follow-up activities: recorded once per external id, and the customer's last_activity_at."""

from __future__ import annotations

from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


async def test_activities_move_last_activity_at_forward_and_are_idempotent(client, api):
    await create_tiers(client)
    manager = await create_manager(client)
    customer = await create_customer(client, manager_id=manager["id"])
    assert customer["last_activity_at"] is None
    url = f"/v1/customers/{customer['id']}/activities"

    call = {"kind": "call", "at": "2026-11-20T09:00:00Z", "by": manager["id"], "external_id": "x1"}
    first = await ok(await client.post(url, json=call), 201)
    assert first["by"] == manager["id"] and first["external_id"] == "x1"
    again = await ok(await client.post(url, json=call), 200)
    assert again["id"] == first["id"]

    await ok(await client.post(url, json={"kind": "meeting", "at": "2026-11-25T09:00:00Z"}), 201)
    # an older activity arriving late does not move it back
    await ok(await client.post(url, json={"kind": "email", "at": "2026-11-01T09:00:00Z"}), 201)
    seen = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert seen["last_activity_at"].startswith("2026-11-25T09:00:00")
    listed = await ok(await client.get(url))
    assert [a["kind"] for a in listed["items"]] == ["meeting", "call", "email"]

    other = await create_customer(client)
    clash = await client.post(f"/v1/customers/{other['id']}/activities", json=call)
    assert assert_problem(clash, 409)["activity_id"] == first["id"]
    for bad in (
        {"kind": "call", "at": 1767225600},
        {"kind": "call", "at": "2026-11-20T09:00:00"},
        {"kind": "lunch", "at": "2026-11-20T09:00:00Z"},
    ):
        assert_problem(await client.post(url, json=bad), 422)
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(await client.post(f"/v1/customers/{missing}/activities", json=call), 404)


async def test_a_crm_activity_arrives_as_a_signed_webhook(committed_client, factory):
    from tests.integration.test_webhooks_inbound import _process_all, source, standard_request

    client = committed_client
    src = await source(client, "crm", "standard")
    await create_tiers(client)
    manager = await create_manager(client, external_ref="crm-m1")
    customer = await create_customer(client, external_ref="crm-c1", manager_id=manager["id"])
    event = {
        "type": "customer.activity_recorded",
        "timestamp": "2026-12-01T09:00:00Z",
        "data": {
            "external_ref": "crm-c1",
            "kind": "meeting",
            "at": "2026-11-30T15:00:00Z",
            "by_external_ref": "crm-m1",
            "external_id": "act-9",
        },
    }
    body, headers = standard_request(src["secret"], event)
    await ok(await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202)
    assert await _process_all(factory) == ["processed"]
    seen = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert seen["last_activity_at"].startswith("2026-11-30T15:00:00")
    [activity] = (await ok(await client.get(f"/v1/customers/{customer['id']}/activities")))["items"]
    assert activity["by"] == manager["id"] and activity["external_id"] == "act-9"
