"""Racing placements never give a customer two owners or overfill a manager."""

import asyncio

from sqlalchemy.ext.asyncio import create_async_engine

from app.check import find_violations
from app.db.session import create_session_factory, session_scope
from app.handovers import aftercare
from tests.integration.factories import create_customer, create_manager, create_tiers, ok
from tests.integration.locks import lock_waited_or_done


async def _violations(url):
    engine = create_async_engine(url)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            return await find_violations(session)
    finally:
        await engine.dispose()


async def test_two_concurrent_applies_place_each_customer_once(committed_client, fresh_database):
    client = committed_client
    await create_tiers(client)
    # The race does not interleave the same way every time: run it a few rounds, each with a
    # fresh manager (earlier ones are full) and a fresh pool.
    for _ in range(3):
        manager = await create_manager(client, level=3, capacity=10)
        pool = [await create_customer(client, tier="standard") for _ in range(8)]

        # Different customers each, so neither plan can simply repeat the other's moves.
        first, second = await asyncio.gather(
            client.post(
                "/v1/assignments/apply",
                json={"customer_ids": [c["id"] for c in pool[:4]], "review": "skip"},
            ),
            client.post(
                "/v1/assignments/apply",
                json={"customer_ids": [c["id"] for c in pool[4:]], "review": "skip"},
            ),
        )

        assert first.status_code == second.status_code == 200, (first.text, second.text)
        assert first.json()["moved"] + second.json()["moved"] == 5, "capacity 10 / weight 2"
        m = await ok(await client.get(f"/v1/managers/{manager['id']}"))
        assert m["workload"] == 10 and m["customer_count"] == 5
    assert await _violations(fresh_database) == []


async def test_manual_patch_racing_an_apply_never_overfills(committed_client, fresh_database):
    client = committed_client
    await create_tiers(client)
    manager = await create_manager(client, level=3, capacity=10)
    for _ in range(4):
        await create_customer(client, tier="standard", manager_id=manager["id"])
    pool_customer = await create_customer(client, tier="standard")
    manual_customer = await create_customer(client, tier="standard")

    apply, patch = await asyncio.gather(
        client.post(
            "/v1/assignments/apply", json={"customer_ids": [pool_customer["id"]], "review": "skip"}
        ),
        client.patch(f"/v1/customers/{manual_customer['id']}", json={"manager_id": manager["id"]}),
    )

    assert apply.status_code == 200, apply.text
    assert patch.status_code in (200, 409), patch.text
    placed = apply.json()["moved"] + (1 if patch.status_code == 200 else 0)
    assert placed == 1, "only one more weight-2 customer fits"
    m = await ok(await client.get(f"/v1/managers/{manager['id']}"))
    assert m["workload"] == 10
    assert await _violations(fresh_database) == []


async def test_racing_single_placements_never_overfill_or_place_a_customer_twice(
    committed_client, fresh_database
):
    """Single-customer placements run side by side (no placement lock): each locks only the
    manager it chose and re-checks it. Racing each other (one customer asked for twice), an
    apply and a manual move, they fill every manager exactly to capacity and never give a
    customer two owners."""
    client = committed_client
    await create_tiers(client)
    for _ in range(3):
        managers = [await create_manager(client, level=3, capacity=10) for _ in range(2)]
        pool = [await create_customer(client, tier="standard") for _ in range(14)]
        manual = await create_customer(client, tier="standard")
        posts = [client.post(f"/v1/customers/{c['id']}/assign", json={}) for c in pool[:13]]
        posts += [
            client.post(f"/v1/customers/{pool[0]['id']}/assign", json={}),
            client.post(
                "/v1/assignments/apply", json={"customer_ids": [pool[13]["id"]], "review": "skip"}
            ),
            client.patch(f"/v1/customers/{manual['id']}", json={"manager_id": managers[0]["id"]}),
        ]
        *assigns, patch = await asyncio.gather(*posts)

        for response in assigns:
            assert response.status_code == 200, response.text
        assert patch.status_code in (200, 409), patch.text
        owners = [
            (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"]
            for c in (*pool, manual)
        ]
        assert sum(o is not None for o in owners) == 10, "capacity 10 twice, weight 2 each"
        for manager in managers:
            m = await ok(await client.get(f"/v1/managers/{manager['id']}"))
            assert m["workload"] == 10 and m["customer_count"] == 5
            assert owners.count(manager["id"]) == 5
    assert await _violations(fresh_database) == []


async def test_a_single_assign_racing_a_refusals_re_placement_never_overfills(
    committed_client, fresh_database, monkeypatch
):
    """A refused handover item is placed again by the engine over managers read without their
    row locks (the placement lock excludes other automated placements); a single assign to
    the manager it chose, sent meanwhile, waits for it, then finds that manager full."""
    client = committed_client
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=100)
    successor = await create_manager(client, level=4, capacity=40)
    small = await create_manager(client, level=4, capacity=2)  # room for one standard
    refusing = await create_customer(client, tier="standard", manager_id=leaving["id"])
    pooled = await create_customer(client, tier="standard")
    handover = await ok(
        await client.post(
            "/v1/handovers",
            json={
                "from_manager_id": leaving["id"],
                "reason": "departure",
                "strategy": "successor",
                "successor_id": successor["id"],
            },
        ),
        201,
    )
    for action in ("plan", "approve", "execute"):
        await ok(await client.post(f"/v1/handovers/{handover['id']}/{action}"))
    propose = aftercare.assignments.propose
    sent: dict[str, asyncio.Task] = {}

    async def propose_then_race(session, **kwargs):
        plan = await propose(session, **kwargs)  # the refusal has read the workloads
        sent["assign"] = asyncio.create_task(
            client.post(f"/v1/customers/{pooled['id']}/assign", json={"manager_id": small["id"]})
        )
        await lock_waited_or_done(fresh_database, sent["assign"])
        return plan

    monkeypatch.setattr(aftercare.assignments, "propose", propose_then_race)
    item = await ok(
        await client.post(f"/v1/handovers/{handover['id']}/items/{refusing['id']}/refuse")
    )
    monkeypatch.undo()
    assign = await sent["assign"]
    assert item["final_manager_id"] == small["id"], item
    assert assign.status_code == 409, assign.text
    after = await ok(await client.get(f"/v1/managers/{small['id']}"))
    assert after["workload"] <= after["capacity"], after
    assert (await ok(await client.get(f"/v1/customers/{pooled['id']}")))["manager_id"] is None
    assert await _violations(fresh_database) == []
