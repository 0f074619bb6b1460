"""Handover and item lists page by their keyset cursors: every row once, in order, and each
cursor names the sort key of the last row of its page."""

from __future__ import annotations

import uuid
from datetime import datetime

from app.core.pagination import decode_cursor
from tests.integration.factories import create_customer, create_manager, create_tiers, ok


async def test_handover_pages_are_newest_first_and_end(client):
    await create_tiers(client)
    created = []
    for _ in range(3):
        manager = await create_manager(client, level=4, capacity=40)
        await create_customer(client, tier="standard", manager_id=manager["id"])
        body = {"from_manager_id": manager["id"], "reason": "departure"}
        created.append(await ok(await client.post("/v1/handovers", json=body), 201))

    seen = []
    cursor = None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = await ok(await client.get("/v1/handovers", params=params))
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        at, last_id = decode_cursor(cursor, (datetime, uuid.UUID))
        assert str(last_id) == page["items"][-1]["id"]
        assert at == datetime.fromisoformat(page["items"][-1]["created_at"])
    ids = [h["id"] for h in seen]
    assert sorted(ids) == sorted(h["id"] for h in created)
    keys = [(h["created_at"], h["id"]) for h in seen]
    assert keys == sorted(keys, reverse=True)


async def test_item_pages_follow_the_customer_id(client):
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=40)
    owned = [
        await create_customer(client, tier="standard", manager_id=leaving["id"]) for _ in range(3)
    ]
    body = {"from_manager_id": leaving["id"], "reason": "departure"}
    handover = await ok(await client.post("/v1/handovers", json=body), 201)

    url = f"/v1/handovers/{handover['id']}/items"
    seen = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await ok(await client.get(url, params=params))
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert decode_cursor(cursor, (uuid.UUID,)) == [uuid.UUID(page["items"][-1]["customer_id"])]
    assert [i["customer_id"] for i in seen] == sorted(c["id"] for c in owned)
