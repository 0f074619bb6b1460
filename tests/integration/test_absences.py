"""Absences: a manager on leave takes no new customers by any path, and is back when it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


NOW = datetime.now(UTC)


async def absent_now(client, manager, **fields):
    body = {
        "starts_at": iso(NOW - timedelta(hours=1)),
        "ends_at": iso(NOW + timedelta(days=7)),
        "kind": "leave",
    }
    body.update(fields)
    return await ok(await client.post(f"/v1/managers/{manager['id']}/absences", json=body), 201)


async def test_an_absent_manager_gets_no_new_customer_until_the_absence_ends_early(client, api):
    await create_tiers(client)
    away = await create_manager(client)
    customer = await create_customer(client)
    absence = await absent_now(client, away)
    assert absence["state"] == "current" and absence["cover"] == "none"

    # the placement guard refuses a manual move
    refused = assert_problem(
        await client.patch(f"/v1/customers/{customer['id']}", json={"manager_id": away["id"]}),
        409,
    )
    assert [v["rule"] for v in refused["violations"]] == ["absent"]
    # the engine's single placement finds nobody else and names the same rule for the pair
    checked = assert_problem(
        await client.post(
            f"/v1/customers/{customer['id']}/assign", json={"manager_id": away["id"]}
        ),
        409,
    )
    assert "absent" in [v["rule"] for v in checked["violations"]]

    # the engine skips the absent manager: nobody to take the customer, then whoever is there
    nobody = await ok(
        await client.post(f"/v1/customers/{customer['id']}/assign", json={"dry_run": True})
    )
    assert nobody["decision"]["manager_id"] is None
    present = await create_manager(client)
    placed = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={}))
    assert placed["applied"] is True and placed["decision"]["manager_id"] == present["id"]

    # ended early: available again at once
    ended = await ok(
        await client.patch(
            f"/v1/managers/{away['id']}/absences/{absence['id']}",
            json={"ends_at": iso(NOW - timedelta(minutes=1))},
        )
    )
    assert ended["state"] == "ended"
    moved = await ok(
        await client.patch(f"/v1/customers/{customer['id']}", json={"manager_id": away["id"]})
    )
    assert moved["manager_id"] == away["id"]
    # an ended absence no longer changes
    late = await client.patch(
        f"/v1/managers/{away['id']}/absences/{absence['id']}",
        json={"ends_at": iso(NOW + timedelta(days=1))},
    )
    assert assert_problem(late, 409)["code"] == "invalid_transition"


async def test_what_an_absent_manager_holds_stays(client, api):
    await create_tiers(client)
    owner = await create_manager(client)
    customer = await create_customer(client, manager_id=owner["id"])
    await absent_now(client, owner, kind="sick")
    kept = await ok(
        await client.patch(f"/v1/customers/{customer['id']}", json={"annual_value": 1000})
    )
    assert kept["manager_id"] == owner["id"]
    assert (await ok(await client.get("/v1/violations")))["items"] == []


async def test_a_scheduled_absence_blocks_nothing_yet_and_can_be_extended_or_cancelled(client, api):
    await create_tiers(client)
    manager = await create_manager(client)
    later = await absent_now(
        client,
        manager,
        starts_at=iso(NOW + timedelta(days=10)),
        ends_at=iso(NOW + timedelta(days=12)),
        kind="training",
    )
    assert later["state"] == "scheduled"
    customer = await create_customer(client)
    moved = await ok(
        await client.patch(f"/v1/customers/{customer['id']}", json={"manager_id": manager["id"]})
    )
    assert moved["manager_id"] == manager["id"]

    extended = await ok(
        await client.patch(
            f"/v1/managers/{manager['id']}/absences/{later['id']}",
            json={"ends_at": iso(NOW + timedelta(days=14))},
        )
    )
    assert extended["ends_at"].startswith(iso(NOW + timedelta(days=14))[:16])

    overlapping = await client.post(
        f"/v1/managers/{manager['id']}/absences",
        json={
            "starts_at": iso(NOW + timedelta(days=13)),
            "ends_at": iso(NOW + timedelta(days=20)),
            "kind": "leave",
        },
    )
    body = assert_problem(overlapping, 409)
    assert body["code"] == "absence_overlap" and body["absence_id"] == later["id"]

    await ok(await client.delete(f"/v1/managers/{manager['id']}/absences/{later['id']}"), 204)
    listed = await ok(await client.get(f"/v1/managers/{manager['id']}/absences"))
    assert [a["state"] for a in listed["items"]] == ["cancelled"]
    assert (
        await ok(
            await client.get(
                f"/v1/managers/{manager['id']}/absences", params={"state": "scheduled"}
            )
        )
    )["items"] == []


async def test_cover_names_an_active_interim_manager(client, api):
    await create_tiers(client)
    manager = await create_manager(client)
    interim = await create_manager(client)
    absence = await absent_now(client, manager, cover=f"interim:{interim['id']}")
    assert absence["cover"] == f"interim:{interim['id']}"
    assert absence["interim_manager_id"] == interim["id"]

    for cover in ("someone", "interim:nobody", f"interim:{manager['id']}"):
        other = await create_manager(client)
        bad = await client.post(
            f"/v1/managers/{other['id'] if 'nobody' in cover else manager['id']}/absences",
            json={
                "starts_at": iso(NOW + timedelta(days=30)),
                "ends_at": iso(NOW + timedelta(days=31)),
                "kind": "leave",
                "cover": cover,
            },
        )
        assert_problem(bad, 422)


async def test_absence_input_is_checked(client, api):
    manager = await create_manager(client)
    url = f"/v1/managers/{manager['id']}/absences"
    start = iso(NOW)
    for body in (
        {"starts_at": 1767225600, "ends_at": iso(NOW + timedelta(days=1)), "kind": "leave"},
        {"starts_at": start, "ends_at": start, "kind": "leave"},
        {"starts_at": "2026-12-01T00:00:00", "ends_at": iso(NOW), "kind": "leave"},
        {"starts_at": start, "ends_at": iso(NOW + timedelta(days=1)), "kind": "holiday"},
    ):
        assert_problem(await client.post(url, json=body), 422)
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(
        await client.post(
            f"/v1/managers/{missing}/absences",
            json={"starts_at": start, "ends_at": iso(NOW + timedelta(days=1)), "kind": "leave"},
        ),
        404,
    )
    assert_problem(await client.get(f"/v1/managers/{missing}/absences"), 404)


async def test_auto_cover_moves_the_customers_at_the_start_and_back_when_ended_early(client, api):
    from app.db.session import session_scope
    from app.handovers import lifecycle as handover_lifecycle

    await create_tiers(client)
    away = await create_manager(client)
    colleague = await create_manager(client)
    held = [await create_customer(client, manager_id=away["id"]) for _ in range(2)]
    absence = await absent_now(client, away, cover="auto")
    assert absence["cover"] == "auto" and absence["cover_handover_id"]
    handover = await ok(await client.get(f"/v1/handovers/{absence['cover_handover_id']}"))
    assert handover["reason"] == "leave" and handover["state"] == "approved"

    # the worker executes it: the absence has started
    async with session_scope(api.factory) as session:
        done = await handover_lifecycle.execute_handover(
            session, handover_id=handover["id"], actor="scheduler"
        )
    assert done.state == "completed"
    for customer in held:
        now_with = await ok(await client.get(f"/v1/customers/{customer['id']}"))
        assert now_with["manager_id"] == colleague["id"]

    # extended: the cover follows
    extended = await ok(
        await client.patch(
            f"/v1/managers/{away['id']}/absences/{absence['id']}",
            json={"ends_at": iso(NOW + timedelta(days=9))},
        )
    )
    handover = await ok(await client.get(f"/v1/handovers/{absence['cover_handover_id']}"))
    assert handover["until"][:16] == extended["ends_at"][:16]

    # returned early: the customers come back at once
    await ok(
        await client.patch(
            f"/v1/managers/{away['id']}/absences/{absence['id']}",
            json={"ends_at": iso(datetime.now(UTC))},
        )
    )
    for customer in held:
        back = await ok(await client.get(f"/v1/customers/{customer['id']}"))
        assert back["manager_id"] == away["id"]
    handover = await ok(await client.get(f"/v1/handovers/{absence['cover_handover_id']}"))
    assert handover["cover_returned_at"] is not None


async def test_cancelling_a_scheduled_auto_cover_absence_cancels_its_handover(client, api):
    await create_tiers(client)
    away = await create_manager(client)
    await create_manager(client)
    await create_customer(client, manager_id=away["id"])
    later = await absent_now(
        client,
        away,
        starts_at=iso(NOW + timedelta(days=3)),
        ends_at=iso(NOW + timedelta(days=5)),
        cover="auto",
    )
    await ok(await client.delete(f"/v1/managers/{away['id']}/absences/{later['id']}"), 204)
    handover = await ok(await client.get(f"/v1/handovers/{later['cover_handover_id']}"))
    assert handover["state"] == "cancelled"


async def test_auto_cover_of_a_manager_without_customers_is_an_empty_handover(client, api):
    await create_tiers(client)
    idle = await create_manager(client)
    absence = await absent_now(client, idle, cover="auto")
    handover = await ok(await client.get(f"/v1/handovers/{absence['cover_handover_id']}"))
    assert handover["state"] == "approved"


async def test_a_crm_out_of_office_arrives_as_a_signed_webhook(committed_client, factory):
    from tests.integration.test_webhooks_inbound import _process_all, source, standard_request

    client = committed_client
    src = await source(client, "crm", "standard")
    await create_tiers(client)
    manager = await create_manager(client, external_ref="crm-m1")
    body, headers = standard_request(
        src["secret"],
        {
            "type": "manager.absence_set",
            "timestamp": "2026-12-01T09:00:00Z",
            "data": {
                "external_ref": "crm-m1",
                "starts_at": iso(NOW - timedelta(hours=1)),
                "ends_at": iso(NOW + timedelta(days=2)),
            },
        },
    )
    await ok(await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202)
    assert await _process_all(factory) == ["processed"]
    [absence] = (await ok(await client.get(f"/v1/managers/{manager['id']}/absences")))["items"]
    assert absence["kind"] == "out_of_office" and absence["state"] == "current"
    assert absence["created_by"] == "webhook:crm"


async def test_a_crm_ends_moves_and_cancels_an_out_of_office_by_signed_webhooks(
    committed_client, factory
):
    from tests.integration.test_webhooks_inbound import _process_all, source, standard_request

    client = committed_client
    src = await source(client, "crm", "standard")
    await create_tiers(client)
    manager = await create_manager(client, external_ref="crm-m2", capacity=100)
    await create_manager(client, external_ref="crm-m3", capacity=100)
    held = await create_customer(client, manager_id=manager["id"])
    absence = await absent_now(client, manager, cover="auto")
    handover_id = absence["cover_handover_id"]

    async def send(kind: str, data: dict) -> None:
        body, headers = standard_request(
            src["secret"],
            {"type": kind, "timestamp": "2026-12-01T09:00:00Z", "data": data},
        )
        await ok(await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202)
        assert await _process_all(factory) == ["processed"]

    async def the_absence() -> dict:
        listed = await ok(await client.get(f"/v1/managers/{manager['id']}/absences"))
        return next(a for a in listed["items"] if a["id"] == absence["id"])

    # extended: the auto cover's handover follows the new end
    later = NOW + timedelta(days=10)
    await send("manager.absence_changed", {"external_ref": "crm-m2", "ends_at": iso(later)})
    moved = await the_absence()
    assert moved["state"] == "current" and moved["ends_at"].startswith(iso(later)[:19])
    handover = await ok(await client.get(f"/v1/handovers/{handover_id}"))
    assert handover["until"].startswith(iso(later)[:19])

    # ended early (named by Baton's id): the manager is back, the cover handover ends with it
    await send("manager.absence_ended", {"external_ref": "crm-m2", "absence_id": absence["id"]})
    assert (await the_absence())["state"] == "ended"
    handover = await ok(await client.get(f"/v1/handovers/{handover_id}"))
    assert handover["state"] == "cancelled"
    assert (await ok(await client.get(f"/v1/customers/{held['id']}")))["manager_id"] == manager[
        "id"
    ]

    # a scheduled out-of-office, then cancelled by the CRM
    start, end = NOW + timedelta(days=20), NOW + timedelta(days=25)
    await ok(
        await client.post(
            f"/v1/managers/{manager['id']}/absences",
            json={"starts_at": iso(start), "ends_at": iso(end), "kind": "out_of_office"},
        ),
        201,
    )
    await send("manager.absence_cancelled", {"external_ref": "crm-m2"})
    states = [
        a["state"]
        for a in (await ok(await client.get(f"/v1/managers/{manager['id']}/absences")))["items"]
    ]
    assert states == ["ended", "cancelled"]

    # nothing open any more: the event fails with the reason, nothing changes
    body, headers = standard_request(
        src["secret"],
        {
            "type": "manager.absence_ended",
            "timestamp": "2026-12-01T09:00:00Z",
            "data": {"external_ref": "crm-m2"},
        },
    )
    await ok(await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202)
    assert await _process_all(factory) == ["failed"]
