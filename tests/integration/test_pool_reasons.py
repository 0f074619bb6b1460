"""The pool list says why each customer waits: the stored reason and the engine's, for the
whole page in one engine call."""

from __future__ import annotations

from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


async def _reasons(client, **params) -> dict[str, tuple[bool, list[str]]]:
    page = await ok(await client.get("/v1/pool/customers", params=params))
    return {c["customer_id"]: (c["placeable"], c["engine_reasons"]) for c in page["items"]}


async def test_the_pool_says_whom_nobody_may_own_whom_nobody_has_room_for_and_whom_one_would_take(
    client,
):
    await create_tiers(client)
    # level 3: may own key (weight 4) but not strategic (min level 4); room for one key customer
    manager = await create_manager(client, level=3, capacity=4)
    await create_customer(client, tier="key", manager_id=manager["id"])
    strategic = await create_customer(client, tier="strategic")
    key = await create_customer(client, tier="key")

    reasons = await _reasons(client)
    assert reasons[strategic["id"]] == (False, ["no_eligible_manager"])
    placeable, why = reasons[key["id"]]
    assert not placeable and "no_capacity" in why

    # a filter by the engine's reason keeps the page's customers that have it
    assert list(await _reasons(client, engine_reason="no_capacity")) == [key["id"]]
    assert await _reasons(client, engine_reason="placeable") == {}

    # capacity raised: a placement now would give the key customer its manager
    await ok(
        await client.patch(
            f"/v1/managers/{manager['id']}",
            json={"capacity": 8},
            headers={"If-Match": f'"{manager["version"]}"'},
        )
    )
    reasons = await _reasons(client)
    assert reasons[key["id"]][0] is True
    assert reasons[strategic["id"]] == (False, ["no_eligible_manager"])
    assert list(await _reasons(client, engine_reason="placeable")) == [key["id"]]
    # nothing was written: both still wait
    assert (await ok(await client.get(f"/v1/customers/{key['id']}")))["manager_id"] is None

    assert_problem(await client.get("/v1/pool/customers?engine_reason=Bad%20one"), 422)
