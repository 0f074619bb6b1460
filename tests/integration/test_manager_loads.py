"""Workloads come from per-manager, per-tier counts kept by triggers on customers: every way
a customer can change moves the counts in the same transaction, and ``baton check`` notices
counts that drifted from a recount."""

import asyncio

from sqlalchemy import text

from app.check import find_violations
from app.managers.repository import _FOLD_LOCK, fold_loads
from app.worker import run_ticks
from tests.integration.factories import create_customer, create_manager, create_tiers, ok
from tests.integration.live import worker_process


async def _workload(client, manager):
    body = await ok(await client.get(f"/v1/managers/{manager['id']}"))
    return body["workload"], body["customer_count"]


async def _recount_violations(api):
    async with api.factory() as session:
        found = await find_violations(session)
    return [v for v in found if v.invariant == "manager_loads_match_a_recount"]


async def test_workloads_follow_every_kind_of_change(api, client):
    await create_tiers(client)  # strategic 8, key 4, standard 2, long_tail 1
    first = await create_manager(client, level=5, capacity=100)
    second = await create_manager(client, level=5, capacity=100)
    key = await create_customer(client, tier="key", manager_id=first["id"])
    standard = await create_customer(client, tier="standard", manager_id=first["id"])
    pooled = await create_customer(client, tier="strategic")
    assert await _workload(client, first) == (6, 2)

    url = "/v1/customers/{}"
    await ok(await client.patch(url.format(standard["id"]), json={"manager_id": second["id"]}))
    assert await _workload(client, first) == (4, 1)
    assert await _workload(client, second) == (2, 1)

    await ok(await client.patch(url.format(key["id"]), json={"tier": "strategic"}))
    assert await _workload(client, first) == (8, 1)

    await ok(await client.patch(url.format(key["id"]), json={"status": "churned"}))
    assert await _workload(client, first) == (0, 0)
    await ok(await client.patch(url.format(key["id"]), json={"status": "active"}))
    assert await _workload(client, first) == (8, 1)

    placed = await ok(await client.post("/v1/assignments/apply", json={"review": "skip"}))
    assert placed["moved"] == 1  # the pooled strategic customer
    owner = (await ok(await client.get(url.format(pooled["id"]))))["manager_id"]
    assert owner in (first["id"], second["id"])
    total = sum([(await _workload(client, m))[0] for m in (first, second)])
    assert total == 8 + 2 + 8

    await ok(await client.patch("/v1/tiers/strategic", json={"weight": 10}))
    total = sum([(await _workload(client, m))[0] for m in (first, second)])
    assert total == 10 + 2 + 10  # a weight change needs no recount

    fresh = await create_customer(client, tier="long_tail")
    assert (await client.delete(url.format(fresh["id"]))).status_code == 204
    assert await _recount_violations(api) == []

    # Each change appended rows; the sweep folds them into one per (manager, tier) it counts.
    before = [await _workload(client, m) for m in (first, second)]
    async with api.factory() as session:
        appended = await session.scalar(text("SELECT count(*) FROM manager_loads"))
        folded = await fold_loads(session)
        rows, pairs = (
            await session.execute(
                text("SELECT count(*), count(DISTINCT (manager_id, tier_code)) FROM manager_loads")
            )
        ).one()
        await session.commit()
    assert appended > rows == pairs and folded > appended - rows
    assert [await _workload(client, m) for m in (first, second)] == before
    assert await _recount_violations(api) == []


async def test_the_check_reports_counts_that_drifted(api, client):
    await create_tiers(client)
    manager = await create_manager(client, level=5, capacity=100)
    await create_customer(client, tier="key", manager_id=manager["id"])
    assert await _recount_violations(api) == []
    async with api.factory() as session:
        await session.execute(text("UPDATE manager_loads SET customers = customers + 1"))
        await session.commit()
    drifted = await _recount_violations(api)
    assert drifted and drifted[0].sample == [manager["id"]]


async def _journal(factory) -> list[tuple[int, str, str, int]]:
    async with factory() as session:
        rows = await session.execute(
            text(
                "SELECT id, CAST(manager_id AS text), tier_code, customers FROM manager_loads"
                " ORDER BY id"
            )
        )
        return [tuple(r) for r in rows]


def _pairs(journal) -> list[tuple[str, str]]:
    return [(m, t) for _, m, t, _ in journal]


async def test_a_tick_folds_the_pairs_that_gained_rows_and_rewrites_no_other(api, client):
    await create_tiers(client)
    first, second, third = [await create_manager(client, level=5, capacity=100) for _ in "123"]
    moved = [await create_customer(client, tier="standard", manager_id=first["id"]) for _ in "12"]
    await create_customer(client, tier="key", manager_id=third["id"])
    await run_ticks(api.factory)
    journal = await _journal(api.factory)
    assert sorted(_pairs(journal)) == sorted(
        [(first["id"], "standard"), (third["id"], "key")]
    )  # one row per pair
    untouched = next(row for row in journal if row[1] == third["id"])

    url = "/v1/customers/{}"
    for customer in moved:  # each move appends a row for each manager
        await ok(await client.patch(url.format(customer["id"]), json={"manager_id": second["id"]}))
    await ok(await client.patch(url.format(moved[0]["id"]), json={"manager_id": first["id"]}))
    before = [await _workload(client, m) for m in (first, second, third)]
    assert len(await _journal(api.factory)) > 3

    done = await run_ticks(api.factory)
    journal = await _journal(api.factory)
    assert done == {"fold_recent_manager_loads": 4 + 3}  # both standard pairs' rows
    assert sorted(_pairs(journal)) == sorted(
        [(first["id"], "standard"), (second["id"], "standard"), (third["id"], "key")]
    )
    assert untouched in journal  # a pair with no new row is not rewritten
    assert [await _workload(client, m) for m in (first, second, third)] == before
    assert before == [(2, 1), (2, 1), (4, 1)]
    assert await _recount_violations(api) == []


async def test_the_minute_fold_folds_crowded_pairs_and_rewrites_no_folded_one(api, client):
    await create_tiers(client)
    busy, quiet = [await create_manager(client, level=5, capacity=100) for _ in "12"]
    await create_customer(client, tier="key", manager_id=quiet["id"])
    for _ in "123":
        await create_customer(client, tier="standard", manager_id=busy["id"])
    journal = await _journal(api.factory)
    folded_already = next(row for row in journal if row[1] == quiet["id"])
    async with api.factory() as session:
        assert await fold_loads(session) == 3  # the busy pair's three rows, now one
        await session.commit()
    journal = await _journal(api.factory)
    assert sorted(_pairs(journal)) == sorted([(busy["id"], "standard"), (quiet["id"], "key")])
    assert folded_already in journal  # the same row, same id: not rewritten
    async with api.factory() as session:  # a quiet journal: nothing to write
        assert await fold_loads(session) == 0
        await session.commit()
    assert await _journal(api.factory) == journal
    assert [await _workload(client, m) for m in (busy, quiet)] == [(6, 3), (4, 1)]


async def test_a_tick_leaves_open_transactions_rows_and_waits_for_another_fold(
    committed_api, committed_client, factory
):
    client = committed_client
    await create_tiers(client)
    manager = await create_manager(client, level=5, capacity=100)
    customers = [await create_customer(client, tier="key", manager_id=manager["id"]) for _ in "12"]
    assert await _workload(client, manager) == (8, 2)

    async with factory() as writer, factory() as folder:
        # A change not yet committed appended its row: the tick neither sees nor folds it.
        await writer.execute(
            text("UPDATE customers SET status = 'churned' WHERE id = :id"),
            {"id": customers[0]["id"]},
        )
        assert await run_ticks(factory) == {"fold_recent_manager_loads": 2}
        assert len(await _journal(factory)) == 1
        await writer.commit()
        assert await _workload(client, manager) == (4, 1)  # the late row counts at once

        # While another fold holds the journal, a tick does nothing (and says so).
        await folder.execute(text(f"SELECT pg_advisory_xact_lock({_FOLD_LOCK})"))
        await ok(
            await client.patch(f"/v1/customers/{customers[1]['id']}", json={"status": "churned"})
        )
        assert await run_ticks(factory) == {"fold_recent_manager_loads": 0}
        assert len(await _journal(factory)) == 3
        await folder.rollback()

    assert await run_ticks(factory) == {"fold_recent_manager_loads": 3}
    assert [row[2:] for row in await _journal(factory)] == []  # 2 - 1 - 1 customers: no row
    assert await _workload(client, manager) == (0, 0)
    assert await _recount_violations(committed_api) == []


async def _until_one_row_per_pair(factory, pairs: int, *, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while len(await _journal(factory)) != pairs:
        assert asyncio.get_running_loop().time() < deadline, await _journal(factory)
        await asyncio.sleep(0.1)


async def test_a_running_worker_folds_each_burst_of_moves_within_seconds(
    committed_api, committed_client, factory, fresh_database, tmp_path
):
    client = committed_client
    await create_tiers(client)
    managers = [await create_manager(client, level=5, capacity=100) for _ in "12"]
    customers = [
        await create_customer(client, tier="standard", manager_id=managers[0]["id"]) for _ in "123"
    ]
    with worker_process(fresh_database, tmp_path, BATON_WORKER_TICK_S="0.2"):
        await _until_one_row_per_pair(factory, 1, within=30)  # the sweep it runs as it starts
        # Three bursts, each folded in a couple of seconds: the ticks, not the minute sweep.
        for burst in range(3):
            owner = managers[(burst + 1) % 2]["id"]
            for customer in customers:
                url = f"/v1/customers/{customer['id']}"
                await ok(await client.patch(url, json={"manager_id": owner}))
            await _until_one_row_per_pair(factory, 1, within=3)
    assert await _workload(client, managers[1]) == (6, 3)
    assert await _recount_violations(committed_api) == []


async def test_a_row_committed_late_below_the_mark_waits_for_the_minute_fold(
    committed_client, factory
):
    client = committed_client
    await create_tiers(client)
    first, second = [await create_manager(client, level=5, capacity=100) for _ in "12"]
    late, early = [
        await create_customer(client, tier="key", manager_id=m["id"]) for m in (first, second)
    ]
    await run_ticks(factory)
    async with factory() as writer:
        await writer.execute(
            text("UPDATE customers SET status = 'churned' WHERE id = :id"), {"id": late["id"]}
        )  # appends a row for the first manager, not committed yet
        await ok(await client.patch(f"/v1/customers/{early['id']}", json={"status": "churned"}))
        assert await run_ticks(factory) == {"fold_recent_manager_loads": 2}  # the second's pair
        await writer.commit()
    # The first manager's late row is below the mark now: ticks leave it, it counts meanwhile.
    assert await run_ticks(factory) == {"fold_recent_manager_loads": 0}
    assert sorted(_pairs(await _journal(factory))) == [(first["id"], "key")] * 2
    assert await _workload(client, first) == (0, 0)
    async with factory() as session:
        await fold_loads(session)
        await session.commit()
    assert await _journal(factory) == []


async def test_the_minute_fold_waits_for_a_fold_running(committed_client, factory):
    client = committed_client
    await create_tiers(client)
    manager = await create_manager(client, level=5, capacity=100)
    for _ in "12":
        await create_customer(client, tier="key", manager_id=manager["id"])
    async with factory() as folder, factory() as sweeper:
        await folder.execute(text(f"SELECT pg_advisory_xact_lock({_FOLD_LOCK})"))
        sweep = asyncio.create_task(fold_loads(sweeper))
        await asyncio.sleep(0.5)
        assert not sweep.done()
        await folder.rollback()
        assert await asyncio.wait_for(sweep, 10) == 2  # the pair's two rows, now one
        await sweeper.commit()
    assert len(await _journal(factory)) == 1
    assert await _workload(client, manager) == (8, 2)


async def test_a_mark_beyond_a_restarted_journal_starts_again(committed_client, factory):
    client = committed_client
    await create_tiers(client)
    manager = await create_manager(client, level=5, capacity=100)
    for _ in "12345":
        await create_customer(client, tier="key", manager_id=manager["id"])
    assert await run_ticks(factory) == {"fold_recent_manager_loads": 5}  # the mark: id 5
    async with factory() as session:  # as a restore would: the journal again, ids from 1
        rows = (
            await session.execute(text("SELECT manager_id, tier_code FROM manager_loads"))
        ).all()
        await session.execute(text("TRUNCATE manager_loads RESTART IDENTITY"))
        for manager_id, tier in rows * 3:
            await session.execute(
                text(
                    "INSERT INTO manager_loads (manager_id, tier_code, customers)"
                    " VALUES (:m, :t, 1)"
                ),
                {"m": manager_id, "t": tier},
            )
        await session.commit()
    assert await run_ticks(factory) == {"fold_recent_manager_loads": 3}
    assert [row[1:] for row in await _journal(factory)] == [(manager["id"], "key", 3)]
