"""Every manager read with the whole book is the same fact as the manager read alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.assignments import loading
from tests.integration.factories import create_customer, create_manager, create_tiers, ok


async def test_managers_read_together_equal_each_manager_read_alone(api, client):
    await create_tiers(client)
    now = datetime.now(UTC)
    plain = await create_manager(client)
    varied = await create_manager(
        client,
        level=5,
        capacity=80,
        region="east",
        languages=["zh", "en"],
        industries=["retail", "mining"],
        team="north",
        max_new_per_day=3,
        rotation_weight=2,
    )
    away = await create_manager(client, status="on_leave")
    window = {
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=2)).isoformat(),
        "kind": "leave",
    }
    await ok(await client.post(f"/v1/managers/{plain['id']}/absences", json=window), 201)
    for tier in ("key", "standard"):
        await create_customer(client, tier=tier, manager_id=varied["id"])
    await ok(await client.patch(f"/v1/managers/{varied['id']}", json={"accepting_new": False}))
    async with api.factory() as session:
        together = await loading.load_managers(session)
        alone = [await loading.load_manager(session, m.id) for m in together]
        await session.rollback()
    assert together == alone
    by_id = {str(m.id): m for m in together}
    assert {plain["id"], varied["id"], away["id"]} <= set(by_id)
    assert by_id[plain["id"]].absent and by_id[varied["id"]].intake_room == 1
    assert by_id[varied["id"]].languages == ("zh", "en") and by_id[varied["id"]].workload == 6
    assert not by_id[varied["id"]].accepting_new and by_id[varied["id"]].rotation_weight == 2
    assert by_id[away["id"]].status == "on_leave" and uuid.UUID(away["id"]) == by_id[away["id"]].id
