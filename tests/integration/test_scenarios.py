"""Re-dividing a department as one scenario: draft, preview, compare, activate atomically."""

from __future__ import annotations

import asyncio
import uuid

from app.check import find_violations
from app.customers import service as customers
from app.customers.schemas import CustomerUpdate
from tests.integration.factories import (
    assert_problem,
    collect_pages,
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


async def owner_of(client, customer):
    return (await ok(await client.get(f"/v1/customers/{customer['id']}")))["manager_id"]


async def scenario(client, changes, name="re-division"):
    return await ok(
        await client.post("/v1/scenarios", json={"name": name, "changes": changes}), 201
    )


async def preview(client, scenario_id, **options):
    return await ok(await client.post(f"/v1/scenarios/{scenario_id}/preview", json=options))


async def east_department(client):
    """Two east managers, three customers each, under a same-region rule."""
    await create_tiers(client)
    await ok(await client.put("/v1/rules", json={"rules": SAME_REGION}))
    a = await create_manager(client, region="east", team="east")
    b = await create_manager(client, region="east", team="east")
    owned = {
        a["id"]: [
            await create_customer(client, region="east", manager_id=a["id"]) for _ in range(3)
        ],
        b["id"]: [
            await create_customer(client, region="east", manager_id=b["id"]) for _ in range(3)
        ],
    }
    return a, b, owned


async def test_a_region_split_moves_only_the_customers_whose_rule_changed(client, allow_loopback):
    a, b, owned = await east_department(client)
    a1, a2, a3 = owned[a["id"]]
    b1, b2, b3 = owned[b["id"]]
    split = await scenario(
        client,
        {
            "managers": [
                {"manager_id": a["id"], "region": "east-1"},
                {"manager_id": b["id"], "region": "east-2"},
            ],
            "customers": [
                {"filter": {"region": "east"}, "set": {"region": "east-2"}},
                {"customer_ids": [a1["id"], a2["id"], b1["id"]], "set": {"region": "east-1"}},
                {"customer_ids": [a2["id"]], "set": {"tier": "key", "pinned": True}},
            ],
        },
    )
    assert split["state"] == "draft" and split["preview"] is None
    capped = await preview(client, split["id"], max_moves=1)
    assert capped["moves"] == 1 and capped["violations_left"] == 1
    assert capped["violations_left_by_reason"] == {"max_moves": 1}
    [left] = capped["violations_left_sample"]
    assert left["reason"] == "max_moves" and left["rules"][0]["rule"] == "same_region"
    result = await preview(client, split["id"], explain="full")
    assert result["customers_total"] == 6 and result["customers_changed"] == 6
    assert result["violations_found"] == 2
    assert result["moves"] == 2 and result["moves_by_reason"] == {"same_region": 2}
    assert result["continuity"] == round(4 / 6, 6)
    assert result["violations_left"] == 0
    moved = {d["customer_id"]: d["manager_id"] for d in result["decisions"]}
    assert moved == {a3["id"]: b["id"], b1["id"]: a["id"]}
    assert all(d["explanation"] for d in result["decisions"])
    # nothing live changed
    assert (await ok(await client.get(f"/v1/managers/{a['id']}")))["region"] == "east"
    assert (await ok(await client.get(f"/v1/customers/{a3['id']}")))["region"] == "east"
    assert await owner_of(client, a3) == a["id"]

    await ok(
        await client.post(
            "/v1/webhook-subscriptions",
            json={
                "url": "http://127.0.0.1:9/baton",
                "event_types": ["scenario.activated", "customer.assigned"],
            },
        ),
        201,
    )
    activated = await ok(await client.post(f"/v1/scenarios/{split['id']}/activate"))
    assert activated["state"] == "activated"
    sent = await ok(await client.get("/v1/webhook-deliveries", params={"limit": 50}))
    assert sorted(d["event_type"] for d in sent["items"]) == [
        "customer.assigned",
        "customer.assigned",
        "scenario.activated",
    ]
    assert activated["activation"]["moves"] == 2
    assert activated["activation"]["violations_recorded"] == 0
    assert await owner_of(client, a3) == b["id"] and await owner_of(client, b1) == a["id"]
    for c in (a1, a2, b2, b3):
        assert await owner_of(client, c) in (a["id"], b["id"])
        assert (await ok(await client.get(f"/v1/customers/{c['id']}/history")))["items"][0][
            "reason"
        ] != "redivision"
    history = await ok(await client.get(f"/v1/customers/{a3['id']}/history"))
    assert history["items"][0]["reason"] == "redivision"
    assert (await ok(await client.get(f"/v1/customers/{b1['id']}")))["region"] == "east-1"
    retiered = await ok(await client.get(f"/v1/customers/{a2['id']}"))
    assert (retiered["tier"], retiered["pinned"], retiered["region"]) == ("key", True, "east-1")
    assert (await ok(await client.get(f"/v1/managers/{b['id']}")))["region"] == "east-2"
    assert (await ok(await client.get("/v1/violations")))["items"] == []
    events = await ok(await client.get("/v1/audit", params={"action": "activate_scenario"}))
    assert events["items"][0]["details"]["moves"] == 2
    previews = await ok(await client.get("/v1/audit", params={"action": "preview_scenario"}))
    assert previews["items"][0]["details"]["moves"] == 2
    # an activated scenario is final
    again = await client.post(f"/v1/scenarios/{split['id']}/activate")
    assert assert_problem(again, 409)["code"] == "invalid_transition"


async def test_a_team_merge_reports_team_loads_and_moves_nobody(client):
    await create_tiers(client)
    north = await create_manager(client, team="north", capacity=20)
    south = await create_manager(client, team="south", capacity=20)
    await create_customer(client, manager_id=north["id"])
    for _ in range(2):
        await create_customer(client, manager_id=south["id"])
    merge = await scenario(
        client,
        {"managers": [{"manager_id": south["id"], "team": "north"}]},
        name="merge south into north",
    )
    result = await preview(client, merge["id"])
    assert result["moves"] == 0 and result["continuity"] == 1.0
    teams = {t["team"]: t for t in result["teams"]}
    assert teams["north"]["managers_before"] == 1 and teams["north"]["managers_after"] == 2
    assert teams["north"]["workload_before"] == 2 and teams["north"]["workload_after"] == 6
    assert teams["south"]["managers_after"] == 0 and teams["south"]["workload_after"] == 0
    changed = {m["manager_id"]: m for m in result["managers"]}
    assert changed[south["id"]]["team_before"] == "south"
    assert changed[south["id"]]["team_after"] == "north"

    await ok(await client.post(f"/v1/scenarios/{merge['id']}/activate"))
    assert (await ok(await client.get(f"/v1/managers/{south['id']}")))["team"] == "north"
    report = await ok(await client.get("/v1/reports/workload"))
    assert [t["key"] for t in report["teams"]] == ["north"]


async def test_a_capacity_cut_with_max_moves_moves_at_most_that_many(client):
    await create_tiers(client)
    full = await create_manager(client, capacity=20)
    spare = await create_manager(client, capacity=40)
    for _ in range(8):
        await create_customer(client, manager_id=full["id"])  # 8 × weight 2 = 16
    cut = await scenario(client, {"managers": [{"manager_id": full["id"], "capacity": 8}]})

    fix_only = await preview(client, cut["id"])
    assert fix_only["moves"] == 0  # capacity is about taking more, not about what is held
    guarded = await preview(client, cut["id"], fix_only=False, rebalance_to=1.0)
    assert guarded["moves"] == 0  # every customer changed owner today: the stability guard
    capped = await preview(
        client, cut["id"], fix_only=False, rebalance_to=1.0, max_moves=2, min_days_since_move=0
    )
    assert capped["moves"] == 2
    assert capped["moves_by_reason"] == {"rebalance_over_target": 2}
    loads = {m["manager_id"]: m for m in capped["managers"]}
    assert loads[full["id"]]["workload_after"] == 12
    assert loads[full["id"]]["utilization_after"] == 1.5
    assert loads[spare["id"]]["workload_after"] == 4
    assert capped["after"]["peak_utilization"] == 1.5

    activated = await ok(await client.post(f"/v1/scenarios/{cut['id']}/activate"))
    assert activated["activation"]["moves"] == 2
    manager = await ok(await client.get(f"/v1/managers/{full['id']}"))
    assert manager["capacity"] == 8 and manager["workload"] == 12


async def test_activation_racing_a_manual_move_is_refused_and_applies_nothing(client):
    a, b, owned = await east_department(client)
    a1 = owned[a["id"]][0]
    move_a = await scenario(
        client,
        {
            "managers": [{"manager_id": a["id"], "region": "west", "capacity": 30}],
            "tiers": [{"code": "standard", "weight": 3}],
        },
    )
    result = await preview(client, move_a["id"])
    assert result["moves"] == 3  # a's customers are east, a would be west
    # someone moves a customer by hand after the preview
    await ok(await client.patch(f"/v1/customers/{a1['id']}", json={"manager_id": b["id"]}))

    stale = await client.post(f"/v1/scenarios/{move_a['id']}/activate")
    body = assert_problem(stale, 409)
    assert body["code"] == "stale_scenario" and "customers" in body["changed"]
    assert (await ok(await client.get(f"/v1/managers/{a['id']}")))["region"] == "east"
    assert (await ok(await client.get(f"/v1/managers/{a['id']}")))["capacity"] == 20
    assert (await ok(await client.get("/v1/tiers/standard")))["weight"] == 2
    assert await owner_of(client, owned[a["id"]][1]) == a["id"]
    assert (await ok(await client.get(f"/v1/scenarios/{move_a['id']}")))["state"] == "draft"

    # preview again, then it applies
    await preview(client, move_a["id"])
    activated = await ok(await client.post(f"/v1/scenarios/{move_a['id']}/activate"))
    assert activated["activation"]["moves"] == 2
    assert (await ok(await client.get("/v1/tiers/standard")))["weight"] == 3


async def test_two_scenarios_compared_side_by_side(client):
    a, _b, owned = await east_department(client)
    c = await create_manager(client, region="east", team="east-new")
    keep = await scenario(
        client, {"managers": [{"manager_id": c["id"], "capacity": 40}]}, name="keep"
    )
    spread = await scenario(
        client,
        {
            "new_managers": [
                {
                    "name": "New",
                    "email": "new@example.com",
                    "level": 3,
                    "capacity": 20,
                    "region": "east-2",
                    "team": "east-2",
                }
            ],
            "customers": [{"customer_ids": [owned[a["id"]][0]["id"]], "set": {"region": "east-2"}}],
        },
        name="open east-2",
    )
    for s in (keep, spread):
        await preview(client, s["id"])
    compared = await ok(
        await client.get("/v1/scenarios/compare", params={"ids": f"{keep['id']},{spread['id']}"})
    )
    first, second = compared["scenarios"]
    assert (first["name"], second["name"]) == ("keep", "open east-2")
    assert first["moves"] == 0 and first["continuity"] == 1.0
    assert second["moves"] == 1 and second["moves_by_reason"] == {"same_region": 1}
    assert second["violations_left"] == 0
    teams = {t["team"]: t for t in second["teams"]}
    assert teams["east-2"]["workload_before"] == 0 and teams["east-2"]["workload_after"] == 2
    assert compared["before"]["peak_utilization"] == 0.3

    listed = await ok(await client.get("/v1/scenarios"))
    assert {s["id"] for s in listed["items"]} >= {keep["id"], spread["id"]}
    await ok(await client.post(f"/v1/scenarios/{keep['id']}/archive"))
    listed = await ok(await client.get("/v1/scenarios"))
    assert keep["id"] not in {s["id"] for s in listed["items"]}
    archived = await ok(await client.get("/v1/scenarios", params={"state": "archived"}))
    assert [s["id"] for s in archived["items"]] == [keep["id"]]
    refused = await client.patch(f"/v1/scenarios/{keep['id']}", json={"name": "x"})
    assert assert_problem(refused, 409)["code"] == "invalid_transition"


async def test_a_draft_naming_unknown_things_is_refused_and_viewers_only_read(client, api):
    await create_tiers(client)
    taken = await create_manager(client)
    bad = await client.post(
        "/v1/scenarios",
        json={
            "name": "bad",
            "changes": {
                "managers": [{"manager_id": "00000000-0000-0000-0000-000000000001", "level": 2}],
                "tiers": [{"code": "nope", "weight": 2}],
                "new_managers": [
                    {"name": "Dup", "email": taken["email"], "level": 3, "capacity": 10}
                ],
            },
        },
    )
    body = assert_problem(bad, 422)
    assert len(body["errors"]) == 3
    viewer = await api.client("viewer")
    assert (await viewer.get("/v1/scenarios")).status_code == 200
    denied = await viewer.post("/v1/scenarios", json={"name": "x"})
    assert assert_problem(denied, 403)["code"] == "forbidden"
    unpreviewed = await scenario(client, {})
    refused = await client.post(f"/v1/scenarios/{unpreviewed['id']}/activate")
    assert assert_problem(refused, 409)["code"] == "not_previewed"


async def test_scenarios_list_page_by_page(client):
    await create_tiers(client)
    made = [await scenario(client, {}, name=f"s{i}") for i in range(5)]
    pages = await collect_pages(client, "/v1/scenarios", limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert {s["id"] for p in pages for s in p} == {s["id"] for s in made}


async def test_an_activation_waiting_on_a_manual_move_in_flight_refuses_once_it_commits(
    committed_client, factory, fresh_database
):
    client = committed_client
    a, b, owned = await east_department(client)
    racer_customer = owned[a["id"]][0]
    move_a = await scenario(client, {"managers": [{"manager_id": a["id"], "region": "west"}]})
    assert (await preview(client, move_a["id"]))["moves"] == 3

    async with factory() as racer:  # a manual move, locks held, not committed yet
        await customers.update_customer(
            racer,
            customer_id=uuid.UUID(racer_customer["id"]),
            data=CustomerUpdate(manager_id=uuid.UUID(b["id"])),
            force=False,
            actor="racer",
        )
        activation = asyncio.create_task(client.post(f"/v1/scenarios/{move_a['id']}/activate"))
        await asyncio.sleep(0.5)
        assert not activation.done(), "the activation waits for the customer's row lock"
        await racer.commit()
    stale = await activation
    assert assert_problem(stale, 409)["code"] == "stale_scenario"
    assert await owner_of(client, racer_customer) == b["id"]
    assert await owner_of(client, owned[a["id"]][1]) == a["id"]
    assert (await ok(await client.get(f"/v1/managers/{a['id']}")))["region"] == "east"
    async with factory() as session:
        assert await find_violations(session) == []


async def test_a_departure_in_a_scenario_moves_the_portfolio_and_pools_what_nobody_can_take(
    client,
):
    await create_tiers(client)
    leaving = await create_manager(client, capacity=20)
    other = await create_manager(client, capacity=2)  # room for one standard customer
    first = await create_customer(client, manager_id=leaving["id"])
    second = await create_customer(client, manager_id=leaving["id"])
    departure = await scenario(
        client, {"managers": [{"manager_id": leaving["id"], "status": "departed"}]}
    )
    result = await preview(client, departure["id"])
    assert result["violations_found"] == 2
    assert result["moves_by_reason"] == {"manager_active": 1, "to_pool": 1}
    assert result["violations_left"] == 0

    await ok(await client.post(f"/v1/scenarios/{departure['id']}/activate"))
    owners = {await owner_of(client, first), await owner_of(client, second)}
    assert owners == {other["id"], None}
    assert (await ok(await client.get(f"/v1/managers/{leaving['id']}")))["status"] == "departed"
    assert (await ok(await client.get("/v1/violations")))["items"] == []
