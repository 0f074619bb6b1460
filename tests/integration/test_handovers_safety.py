"""Handovers under failure and concurrency, run by the worker, and at 10 000 customers.

These use a database of their own where requests really commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.check import find_violations
from app.db.session import create_session_factory, session_scope
from app.handovers import aftercare, lifecycle
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)
from tests.integration.test_handovers import act, create, history, items, owner


@pytest.fixture
async def db(fresh_database):
    """Sessions on the test's own database, the way the worker opens them."""
    engine = create_async_engine(fresh_database)
    factory = create_session_factory(engine)

    def scope() -> AsyncIterator[AsyncSession]:
        return session_scope(factory)

    yield scope
    await engine.dispose()


async def setup(client, customers: int = 10):
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=100)
    a = await create_manager(client, level=4, capacity=100)
    b = await create_manager(client, level=4, capacity=100)
    owned = [await create_customer(client, manager_id=leaving["id"]) for _ in range(customers)]
    return leaving, a, b, owned


async def handover_rows(db, handover_id: str) -> int:
    async with db() as session:
        return int(
            await session.scalar(
                text(
                    "SELECT count(*) FROM assignments "
                    "WHERE handover_id = :h AND reason = 'handover'"
                ),
                {"h": handover_id},
            )
        )


async def no_violations(db) -> None:
    async with db() as session:
        assert await find_violations(session) == []


async def test_a_crash_half_way_applies_nothing_and_a_retry_completes_once(committed_client, db):
    client = committed_client
    leaving, _, _, customers = await setup(client)
    h = await create(client, leaving["id"])
    await act(client, h["id"], "plan")
    await act(client, h["id"], "approve")
    async with db() as session:  # fail on the 6th ledger row written by the execution
        await session.execute(text("CREATE SEQUENCE crash_rows"))
        await session.execute(
            text(
                """
                CREATE FUNCTION crash_half_way() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF NEW.reason = 'handover' AND nextval('crash_rows') > 5 THEN
                    RAISE EXCEPTION 'injected failure after 5 rows';
                  END IF;
                  RETURN NEW;
                END $$
                """
            )
        )
        await session.execute(
            text(
                "CREATE TRIGGER crash BEFORE INSERT ON assignments "
                "FOR EACH ROW EXECUTE FUNCTION crash_half_way()"
            )
        )

    r = await client.post(f"/v1/handovers/{h['id']}/execute")
    assert r.status_code == 503, r.text
    assert (await ok(await client.get(f"/v1/handovers/{h['id']}")))["state"] == "approved"
    assert await handover_rows(db, h["id"]) == 0
    assert {await owner(client, c["id"]) for c in customers} == {leaving["id"]}
    assert {i["status"] for i in (await items(client, h["id"])).values()} == {"proposed"}
    await no_violations(db)

    async with db() as session:
        await session.execute(text("DROP TRIGGER crash ON assignments"))
    done = await act(client, h["id"], "execute")
    assert done["state"] == "completed" and done["counts"]["moved"] == 10
    assert await handover_rows(db, h["id"]) == 10
    again = await act(client, h["id"], "execute")
    assert again["audit"] == done["audit"], "a retry after completion changes nothing"
    assert await handover_rows(db, h["id"]) == 10
    await no_violations(db)


async def test_two_executes_at_once_apply_the_handover_once(committed_client, db):
    client = committed_client
    leaving, _, _, customers = await setup(client)
    h = await create(client, leaving["id"])
    await act(client, h["id"], "plan")
    await act(client, h["id"], "approve")

    first, second = await asyncio.gather(
        client.post(f"/v1/handovers/{h['id']}/execute"),
        client.post(f"/v1/handovers/{h['id']}/execute"),
    )

    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["state"] == second.json()["state"] == "completed"
    assert await handover_rows(db, h["id"]) == len(customers)
    audit = (await ok(await client.get(f"/v1/handovers/{h['id']}")))["audit"]
    assert [e["to_state"] for e in audit].count("completed") == 1
    for c in customers:
        assert [r["reason"] for r in await history(client, c["id"])] == ["handover", "manual"]
    await no_violations(db)


async def test_a_manual_patch_racing_an_execution_keeps_the_ledger_consistent(committed_client, db):
    client = committed_client
    leaving, _, b, customers = await setup(client)
    raced = customers[0]["id"]
    h = await create(client, leaving["id"], strategy="successor", successor_id=b["id"])
    await act(client, h["id"], "plan")
    await act(client, h["id"], "approve")
    other = await create_manager(client, level=4, capacity=100)

    execute, patch = await asyncio.gather(
        client.post(f"/v1/handovers/{h['id']}/execute"),
        client.patch(f"/v1/customers/{raced}", json={"manager_id": other["id"]}),
    )

    assert execute.status_code == 200, execute.text
    assert patch.status_code == 200, patch.text
    item = (await items(client, h["id"]))[raced]
    assert await owner(client, raced) == other["id"], "the later manual change wins"
    if item["status"] == "skipped":  # the patch committed first: execution left it alone
        assert [r["reason"] for r in await history(client, raced)] == ["manual", "manual"]
    else:  # execution first, then the manual move on top
        assert item["status"] == "moved"
        assert [r["reason"] for r in await history(client, raced)] == [
            "manual",
            "handover",
            "manual",
        ]
    for c in customers[1:]:
        assert await owner(client, c["id"]) == b["id"]
    await no_violations(db)


async def test_the_worker_executes_an_approved_handover_when_it_is_due(committed_client, db):
    client = committed_client
    leaving, _, _, customers = await setup(client, customers=3)
    effective = datetime.now(UTC) + timedelta(hours=1)
    h = await create(client, leaving["id"], effective_at=effective.isoformat())
    await act(client, h["id"], "plan")
    await act(client, h["id"], "approve")
    body = assert_problem(await client.post(f"/v1/handovers/{h['id']}/execute"), 409)
    assert "scheduled" in body["detail"]

    async with db() as session:
        assert h["id"] not in {
            str(i) for i in await lifecycle.due_handover_ids(session, now=datetime.now(UTC))
        }
        due = await lifecycle.due_handover_ids(session, now=effective + timedelta(seconds=1))
    assert [str(i) for i in due] == [h["id"]]
    async with db() as session:  # the worker's clock is past effective_at; force stands in
        out = await lifecycle.execute_handover(
            session, handover_id=due[0], actor="worker", force=True
        )
    assert out.state == "completed" and out.counts["moved"] == 3
    async with db() as session:
        again = await lifecycle.execute_handover(session, handover_id=due[0], actor="worker")
        assert again.audit == out.audit
        assert await lifecycle.due_handover_ids(session, now=effective + timedelta(days=1)) == []
    moved = (await items(client, h["id"])).values()
    assert {(i["notification_status"], i["notification_error"]) for i in moved} == {
        ("not_sent", "no subscriber")
    }, "nobody subscribes to notifications: nothing can have been sent"
    for c in customers:
        assert await owner(client, c["id"]) != leaving["id"]


async def test_temporary_cover_returns_customers_when_the_leave_ends(committed_client, db):
    client = committed_client
    leaving, a, b, customers = await setup(client, customers=3)
    until = datetime.now(UTC) + timedelta(days=14)
    h = await create(
        client,
        leaving["id"],
        reason="leave",
        strategy="successor",
        successor_id=a["id"],
        until=until.isoformat(),
    )
    await act(client, h["id"], "plan")
    await act(client, h["id"], "approve")
    await act(client, h["id"], "execute")
    assert (await ok(await client.get(f"/v1/managers/{leaving['id']}")))["status"] == "on_leave"
    for c in customers:
        assert (await history(client, c["id"]))[0]["reason"] == "cover"
    moved_on = customers[0]["id"]
    await ok(await client.patch(f"/v1/customers/{moved_on}", json={"manager_id": b["id"]}))

    async with db() as session:
        assert await aftercare.due_cover_returns(session, now=datetime.now(UTC)) == []
        due = await aftercare.due_cover_returns(session, now=until + timedelta(seconds=1))
        assert [str(i) for i in due] == [h["id"]]
        result = await aftercare.return_cover(session, handover_id=due[0], actor="worker")
    assert result.restored == 2
    assert [(str(u.customer_id), u.reason) for u in result.not_restored] == [
        (moved_on, "owner changed after the handover")
    ]
    assert await owner(client, moved_on) == b["id"], "reported, not overwritten"
    for c in customers[1:]:
        assert await owner(client, c["id"]) == leaving["id"]
        assert (await history(client, c["id"]))[0]["reason"] == "cover_return"
    assert (await ok(await client.get(f"/v1/managers/{leaving['id']}")))["status"] == "active"
    async with db() as session:
        assert await aftercare.due_cover_returns(session, now=until + timedelta(days=1)) == []
        again = await aftercare.return_cover(session, handover_id=due[0], actor="worker")
        assert again.restored == 0
    await no_violations(db)


async def test_ten_thousand_customers_execute_in_one_transaction(committed_client, db):
    client = committed_client
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=100_000)
    for _ in range(10):
        await create_manager(client, level=4, capacity=2_000)
    async with db() as session:
        await session.execute(
            text(
                """
                WITH c AS (
                    INSERT INTO customers (name, tier_code, manager_id)
                    SELECT 'Bulk ' || g, 'long_tail', :m FROM generate_series(1, 10000) AS g
                    RETURNING id, manager_id)
                INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
                SELECT id, manager_id, now(), 'seed', 'test' FROM c
                """
            ),
            {"m": leaving["id"]},
        )
    h = await create(client, leaving["id"], notify_customers=False)
    assert h["counts"]["total"] == 10_000
    await act(client, h["id"], "plan")
    await act(client, h["id"], "approve")
    started = time.perf_counter()
    done = await act(client, h["id"], "execute")
    elapsed = time.perf_counter() - started
    assert done["counts"]["moved"] == 10_000
    async with db() as session:
        row = (
            await session.execute(
                text(
                    "SELECT count(*), count(DISTINCT started_at) FROM assignments "
                    "WHERE handover_id = :h AND reason = 'handover'"
                ),
                {"h": h["id"]},
            )
        ).one()
        assert tuple(row) == (10_000, 1), "one transaction, one instant"
        left = await session.scalar(
            text("SELECT count(*) FROM customers WHERE manager_id = :m"), {"m": leaving["id"]}
        )
        assert left == 0
    assert elapsed < 30
    await no_violations(db)
