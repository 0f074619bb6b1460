"""The book loaded into the engine's columns says what the customers table says."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from app.assignments import columnar, loading
from app.engine import NO_TIME
from tests.integration.factories import create_customer, create_manager, create_tiers


async def test_columns_match_the_rows(api, client):
    await create_tiers(client)
    owner = await create_manager(client, level=5, capacity=500, region="east")
    made = [
        await create_customer(
            client,
            tier=tier,
            region=region,
            language="zh",
            annual_value=value,
            manager_id=owner["id"],
        )
        for tier, region, value in (
            ("key", "east", "1200.50"),
            ("standard", None, None),
            ("long_tail", "west", "3.00"),
        )
    ]
    async with api.factory() as session:
        # instants before 1970 and without fractions, and one without an owner date
        await session.execute(
            text(
                "UPDATE customers SET owner_since = CASE id "
                "WHEN :a THEN timestamptz '1969-12-31 23:59:59.5+00' "
                "WHEN :b THEN timestamptz '2026-12-01 09:30:00+00' ELSE NULL END"
            ),
            {"a": uuid.UUID(made[0]["id"]), "b": uuid.UUID(made[1]["id"])},
        )
        tiers = await loading.load_tiers(session)
        managers = await loading.load_managers(session, workloads=False)
        columns = await columnar.load_owned_customer_columns(
            session, tiers=tiers, managers=managers
        )
        expected = {
            row[0]: row[1:]
            for row in (
                await session.execute(
                    text(
                        "SELECT id, tier_code, region, floor(extract(epoch FROM owner_since)), "
                        "annual_value FROM customers"
                    )
                )
            ).all()
        }
        await session.rollback()
    assert len(columns) == 3
    for i in range(3):
        cid = uuid.UUID(bytes=bytes(columns.ids[i]))
        tier, region, since, value = expected[cid]
        assert columns.tier_codes[columns.tier[i]] == tier
        assert (columns.regions[columns.region[i]] if columns.region[i] >= 0 else None) == region
        assert columns.last_moved_at[i] == (NO_TIME if since is None else int(since))
        assert columns.owner_ids[columns.owner[i]] == uuid.UUID(owner["id"])
        if value is None:
            assert columns.annual_value[i] != columns.annual_value[i]  # NaN
        else:
            assert columns.annual_value[i] == float(value)
