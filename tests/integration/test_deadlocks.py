"""Writers never deadlock each other, and a deadlock that still happens is retried: the client
sees its change succeed, never a 503."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid

import pytest
from asyncpg.exceptions import DeadlockDetectedError, SerializationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.api.retries import MAX_RETRIES
from app.check import find_violations
from app.customers import service as customers_service
from app.db.session import create_session_factory, session_scope
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)

RACE_SECONDS = 20
RACE_ROUNDS = 150


async def _violations(url):
    engine = create_async_engine(url)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            return await find_violations(session)
    finally:
        await engine.dispose()


async def test_manual_moves_racing_rebalance_applies_never_surface_a_503(
    committed_client, fresh_database
):
    client = committed_client
    await create_tiers(client)
    home = await create_manager(client, level=3, capacity=100)
    for _ in range(3):
        await create_manager(client, level=3, capacity=100)
    customers = [
        await create_customer(client, tier="standard", manager_id=home["id"]) for _ in range(40)
    ]
    rng = random.Random(11)
    rebalance = {"dry_run": False, "target_utilization": 0.3, "min_days_since_move": 0}
    rounds = moved = 0
    deadline = time.monotonic() + RACE_SECONDS
    for _ in range(RACE_ROUNDS):
        if time.monotonic() > deadline:
            break
        # Manual moves pile customers back on one manager while a rebalance spreads them out:
        # both lock the same customers and managers.
        picked = rng.sample(customers, 6)
        responses = await asyncio.gather(
            client.post("/v1/rebalance", json=rebalance),
            *[
                client.patch(f"/v1/customers/{c['id']}", json={"manager_id": home["id"]})
                for c in picked
            ],
        )
        rounds += 1
        for r in responses:
            assert r.status_code == 200, r.text
        moved += responses[0].json()["moved"]
    assert rounds >= 5
    assert moved > 0, "the rebalances really moved customers"
    assert await _violations(fresh_database) == []
    # Every customer has exactly the owner its ledger says.
    for c in customers[:10]:
        current = await ok(await client.get(f"/v1/customers/{c['id']}"))
        history = await ok(await client.get(f"/v1/customers/{c['id']}/history"))
        assert history["items"][0]["manager_id"] == current["manager_id"]
        assert history["items"][0]["ended_at"] is None


async def test_a_deadlocked_request_is_retried_and_succeeds(committed_client, fresh_database):
    client = committed_client
    await create_tiers(client)
    manager = await create_manager(client, level=3, capacity=100)
    customer = await create_customer(client, tier="standard")
    engine = create_async_engine(fresh_database)
    try:
        async with engine.connect() as other:
            # Another writer that takes the locks in the opposite order: the manager first ...
            await other.execute(text("SET deadlock_timeout = '30s'"))  # the PATCH detects it
            await other.execute(
                text("SELECT 1 FROM managers WHERE id = :id FOR UPDATE"), {"id": manager["id"]}
            )
            patch = asyncio.create_task(
                client.patch(f"/v1/customers/{customer['id']}", json={"manager_id": manager["id"]})
            )
            await _until_a_backend_waits_for_a_lock(engine)
            # ... then the customer the PATCH holds while it waits for the manager: a deadlock.
            # Postgres aborts the PATCH's transaction (it detects the cycle) and this one goes on.
            await other.execute(
                text("SELECT 1 FROM customers WHERE id = :id FOR UPDATE"), {"id": customer["id"]}
            )
            assert not patch.done()
            await other.rollback()
            response = await patch
    finally:
        await engine.dispose()
    assert response.status_code == 200, response.text
    assert response.json()["manager_id"] == manager["id"]
    history = await ok(await client.get(f"/v1/customers/{customer['id']}/history"))
    assert [row["manager_id"] for row in history["items"]] == [manager["id"]], "written once"
    assert await _violations(fresh_database) == []


async def _until_a_backend_waits_for_a_lock(engine) -> None:
    async with engine.connect() as conn:
        for _ in range(500):
            waiting = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
            if waiting:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the PATCH never waited for the manager's lock")


@pytest.mark.parametrize("error", [DeadlockDetectedError, SerializationError])
async def test_a_request_losing_every_attempt_is_503_with_retry_after(
    committed_client, monkeypatch, error
):
    client = committed_client
    await create_tiers(client)
    manager = await create_manager(client, level=3, capacity=100)
    customer = await create_customer(client, tier="standard")
    real = customers_service.update_customer
    attempts = []

    async def losing(session, **kwargs):
        await real(session, **kwargs)  # written, then lost: must be rolled back each time
        attempts.append(kwargs["data"].manager_id)
        raise error("lost a race")

    monkeypatch.setattr(customers_service, "update_customer", losing)
    response = await client.patch(
        f"/v1/customers/{customer['id']}", json={"manager_id": manager["id"]}
    )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "concurrent" in response.json()["detail"]
    assert attempts == [uuid.UUID(manager["id"])] * (1 + MAX_RETRIES), "the body each time"
    monkeypatch.setattr(customers_service, "update_customer", real)
    assert (await ok(await client.get(f"/v1/customers/{customer['id']}")))["manager_id"] is None
    assert (await ok(await client.get(f"/v1/customers/{customer['id']}/history")))["items"] == []


async def test_a_request_that_loses_twice_then_wins_is_written_once(committed_client, monkeypatch):
    client = committed_client
    await create_tiers(client)
    manager = await create_manager(client, level=3, capacity=100)
    customer = await create_customer(client, tier="standard")
    real = customers_service.update_customer
    attempts = []

    async def losing_twice(session, **kwargs):
        result = await real(session, **kwargs)
        attempts.append(1)
        if len(attempts) <= 2:
            raise DeadlockDetectedError("deadlock detected")
        return result

    monkeypatch.setattr(customers_service, "update_customer", losing_twice)
    response = await client.patch(
        f"/v1/customers/{customer['id']}",
        json={"manager_id": manager["id"], "name": "Renamed"},
        headers={"X-Request-ID": "retried-once"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "retried-once"
    assert response.json()["name"] == "Renamed"
    assert len(attempts) == 3
    history = await ok(await client.get(f"/v1/customers/{customer['id']}/history"))
    assert [row["manager_id"] for row in history["items"]] == [manager["id"]]
    # created at 1; one bump for the name, one for the owner: the lost attempts left nothing
    assert (await ok(await client.get(f"/v1/customers/{customer['id']}")))["version"] == 3


async def test_a_manual_move_waiting_for_its_customer_is_checked_against_rules_stored_meanwhile(
    committed_client, fresh_database
):
    """The PATCH's lock statement keeps the snapshot it started with while it waits for the
    customer; a rule set committed in that wait still decides the move."""
    client = committed_client
    await create_tiers(client)
    junior = await create_manager(client, level=3, capacity=100)
    customer = await create_customer(client, tier="standard")
    seniors_only = {
        "eligibility": [
            {
                "id": "seniors_only",
                "conditions": [{"field": "manager.level", "op": "gte", "value": 5}],
            }
        ]
    }
    engine = create_async_engine(fresh_database)
    try:
        async with engine.connect() as other:
            await other.execute(
                text("SELECT 1 FROM customers WHERE id = :id FOR UPDATE"), {"id": customer["id"]}
            )
            patch = asyncio.create_task(
                client.patch(f"/v1/customers/{customer['id']}", json={"manager_id": junior["id"]})
            )
            await _until_a_backend_waits_for_a_lock(engine)
            await other.execute(
                text(
                    "INSERT INTO rule_sets (version, rules, created_by) "
                    "SELECT COALESCE(max(version), 0) + 1, CAST(:rules AS jsonb), 'test' "
                    "FROM rule_sets"
                ),
                {"rules": json.dumps(seniors_only)},
            )
            await other.commit()
            response = await patch
    finally:
        await engine.dispose()
    problem = assert_problem(response, 409)
    assert [v["rule"] for v in problem["violations"]] == ["seniors_only"], problem
    after = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert after["manager_id"] is None, "the move the new rules forbid was not made"
