"""The ownership ledger: consistency with the customer row, owner-at queries, the partial
unique index, and capacity checks under concurrent requests."""

import asyncio
import itertools
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tests.integration.factories import (
    assert_problem,
    collect_pages,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def owner_at(client, customer_id, at: datetime):
    body = await ok(
        await client.get(f"/v1/customers/{customer_id}/owner", params={"at": at.isoformat()})
    )
    return body["manager_id"]


async def test_sequence_of_moves_keeps_ledger_and_owner_consistent(client):
    await create_tiers(client)
    a, b, c = [await create_manager(client, capacity=50) for _ in range(3)]
    cust = await create_customer(client, manager_id=a["id"])
    for target in (b["id"], None, c["id"], a["id"], c["id"]):
        await ok(await client.patch(f"/v1/customers/{cust['id']}", json={"manager_id": target}))

    rows = (await ok(await client.get(f"/v1/customers/{cust['id']}/history")))["items"]
    # newest first; the pool leaves no row of its own
    assert [r["manager_id"] for r in rows] == [c["id"], a["id"], c["id"], b["id"], a["id"]]
    assert all(r["reason"] == "manual" for r in rows)
    open_rows = [r for r in rows if r["ended_at"] is None]
    assert len(open_rows) == 1 and open_rows[0]["manager_id"] == c["id"]
    current = await ok(await client.get(f"/v1/customers/{cust['id']}"))
    assert current["manager_id"] == open_rows[0]["manager_id"]
    chrono = list(reversed(rows))
    for earlier, later in itertools.pairwise(chrono):
        assert ts(earlier["ended_at"]) <= ts(later["started_at"])
        assert ts(earlier["started_at"]) <= ts(earlier["ended_at"])
    # b's period ends exactly when the customer went to the pool; c's starts later
    assert ts(chrono[1]["ended_at"]) < ts(chrono[2]["started_at"])
    # each manager's portfolio agrees with the ledger
    for manager, expected in ((a, 0), (b, 0), (c, 1)):
        got = await ok(await client.get(f"/v1/managers/{manager['id']}"))
        assert got["customer_count"] == expected


async def test_history_paginates_newest_first(client):
    await create_tiers(client)
    managers = [await create_manager(client, capacity=50) for _ in range(2)]
    cust = await create_customer(client, manager_id=managers[0]["id"])
    for i in range(6):
        target = managers[(i + 1) % 2]["id"]
        await ok(await client.patch(f"/v1/customers/{cust['id']}", json={"manager_id": target}))
    pages = await collect_pages(client, f"/v1/customers/{cust['id']}/history", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    ids = [r["id"] for p in pages for r in p]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7


async def test_owner_at_before_between_and_after_moves(client):
    await create_tiers(client)
    a = await create_manager(client)
    b = await create_manager(client)
    cust = await create_customer(client, manager_id=a["id"])
    await ok(await client.patch(f"/v1/customers/{cust['id']}", json={"manager_id": b["id"]}))
    await ok(await client.patch(f"/v1/customers/{cust['id']}", json={"manager_id": None}))
    await ok(await client.patch(f"/v1/customers/{cust['id']}", json={"manager_id": a["id"]}))
    rows = (await ok(await client.get(f"/v1/customers/{cust['id']}/history")))["items"]
    row_a1, row_b, row_a2 = reversed(rows)

    assert await owner_at(client, cust["id"], ts(row_a1["started_at"]) - timedelta(days=1)) is None
    assert await owner_at(client, cust["id"], ts(row_a1["started_at"])) == a["id"]
    assert await owner_at(client, cust["id"], ts(row_b["started_at"])) == b["id"]  # hand-off
    middle_of_b = ts(row_b["started_at"]) + (ts(row_b["ended_at"]) - ts(row_b["started_at"])) / 2
    assert await owner_at(client, cust["id"], middle_of_b) == b["id"]
    assert await owner_at(client, cust["id"], ts(row_b["ended_at"])) is None  # in the pool
    assert await owner_at(client, cust["id"], ts(row_a2["started_at"])) == a["id"]
    far = datetime.fromisoformat("2999-01-01T00:00:00+00:00")
    assert await owner_at(client, cust["id"], far) == a["id"]

    body = await ok(
        await client.get(f"/v1/customers/{cust['id']}/owner", params={"at": row_b["started_at"]})
    )
    assert body["assignment"]["id"] == row_b["id"]
    now = await ok(await client.get(f"/v1/customers/{cust['id']}/owner"))
    assert now["manager_id"] == a["id"] and now["assignment"]["id"] == row_a2["id"]


async def test_owner_at_with_other_time_zone_and_naive_instant(client):
    await create_tiers(client)
    a = await create_manager(client)
    cust = await create_customer(client, manager_id=a["id"])
    (row,) = (await ok(await client.get(f"/v1/customers/{cust['id']}/history")))["items"]
    start = ts(row["started_at"])
    shifted = start.astimezone(datetime.fromisoformat("2000-01-01T00:00:00+08:00").tzinfo)
    assert await owner_at(client, cust["id"], shifted) == a["id"]
    just_before = (start - timedelta(microseconds=1)).astimezone(shifted.tzinfo)
    assert await owner_at(client, cust["id"], just_before) is None
    naive_utc = start.replace(tzinfo=None) + timedelta(seconds=1)  # read as UTC
    assert await owner_at(client, cust["id"], naive_utc) == a["id"]


async def test_owner_at_for_a_customer_never_owned(client):
    await create_tiers(client)
    cust = await create_customer(client)
    body = await ok(await client.get(f"/v1/customers/{cust['id']}/owner"))
    assert body["manager_id"] is None and body["assignment"] is None


async def test_database_rejects_a_second_open_ledger_row(engine):
    customer_id, manager_id = uuid.uuid4(), uuid.uuid4()
    async with engine.connect() as conn:
        outer = await conn.begin()
        try:
            await conn.execute(
                text(
                    "INSERT INTO tiers (code, name, rank, weight, min_manager_level) "
                    "VALUES ('t-ix', 'T', 1, 1, 1)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO managers (id, name, email, level, capacity) "
                    "VALUES (:id, 'M', 'ix@example.com', 3, 10)"
                ),
                {"id": manager_id},
            )
            await conn.execute(
                text(
                    "INSERT INTO customers (id, name, tier_code, manager_id) "
                    "VALUES (:id, 'C', 't-ix', :m)"
                ),
                {"id": customer_id, "m": manager_id},
            )
            insert_open = text(
                "INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor) "
                "VALUES (:c, :m, now(), 'manual', 'test')"
            )
            await conn.execute(insert_open, {"c": customer_id, "m": manager_id})
            # a closed row next to the open one is fine
            await conn.execute(
                text(
                    "INSERT INTO assignments (customer_id, manager_id, started_at, ended_at, "
                    "reason, actor) VALUES (:c, :m, now() - interval '1 day', now(), 'manual', "
                    "'test')"
                ),
                {"c": customer_id, "m": manager_id},
            )
            with pytest.raises(IntegrityError, match="uq_assignments_open_per_customer"):
                async with conn.begin_nested():
                    await conn.execute(insert_open, {"c": customer_id, "m": manager_id})
        finally:
            await outer.rollback()


async def test_concurrent_assignments_cannot_overfill_a_manager(committed_client):
    client = committed_client
    await create_tiers(client)
    m = await create_manager(client, capacity=4)  # room for two standard customers
    customers = [await create_customer(client) for _ in range(5)]
    responses = await asyncio.gather(
        *(client.patch(f"/v1/customers/{c['id']}", json={"manager_id": m["id"]}) for c in customers)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 409, 409, 409], [r.text for r in responses]
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409)
    manager = await ok(await client.get(f"/v1/managers/{m['id']}"))
    assert (manager["workload"], manager["customer_count"]) == (4, 2)


async def test_concurrent_moves_of_one_customer_leave_one_open_row(committed_client):
    client = committed_client
    await create_tiers(client)
    managers = [await create_manager(client, capacity=50) for _ in range(4)]
    cust = await create_customer(client)
    responses = await asyncio.gather(
        *(
            client.patch(f"/v1/customers/{cust['id']}", json={"manager_id": m["id"]})
            for m in managers
        )
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    rows = (await ok(await client.get(f"/v1/customers/{cust['id']}/history")))["items"]
    open_rows = [r for r in rows if r["ended_at"] is None]
    current = await ok(await client.get(f"/v1/customers/{cust['id']}"))
    assert len(open_rows) == 1 and open_rows[0]["manager_id"] == current["manager_id"]
    assert len(rows) == 4
