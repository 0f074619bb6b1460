"""Draining the backlog: with the rule set's ``placement.drain_pool`` on, the worker places
waiting pool customers as soon as someone can take them (here: a manager back from leave)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.pool.tasks import drain_backlog as _drain_backlog
from tests.integration.factories import create_customer, create_manager, create_tiers, ok


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def test_the_backlog_is_drained_when_a_manager_returns(client, api):
    await create_tiers(client)
    manager = await create_manager(client, capacity=100)
    now = datetime.now(UTC)
    absence = await ok(
        await client.post(
            f"/v1/managers/{manager['id']}/absences",
            json={
                "starts_at": iso(now - timedelta(hours=1)),
                "ends_at": iso(now + timedelta(days=7)),
                "kind": "leave",
            },
        ),
        201,
    )
    waiting = [await create_customer(client) for _ in range(2)]
    placed = await ok(await client.post(f"/v1/customers/{waiting[0]['id']}/assign", json={}))
    assert placed["decision"]["manager_id"] is None

    # off by default; on, but nobody can take them yet
    assert await _drain_backlog(api.factory, now) == 0
    rules = {"eligibility": [], "preferences": [], "placement": {"drain_pool": True}}
    await ok(await client.put("/v1/rules", json={"rules": rules}))
    assert await _drain_backlog(api.factory, now) == 0

    # back early: the next sweep places the waiting customers
    await ok(
        await client.patch(
            f"/v1/managers/{manager['id']}/absences/{absence['id']}",
            json={"ends_at": iso(datetime.now(UTC) - timedelta(minutes=1))},
        )
    )
    assert await _drain_backlog(api.factory, datetime.now(UTC)) == 2
    for customer in waiting:
        got = await ok(await client.get(f"/v1/customers/{customer['id']}"))
        assert got["manager_id"] == manager["id"]
        history = (await ok(await client.get(f"/v1/customers/{customer['id']}/history")))["items"]
        assert [(h["reason"], h["actor"]) for h in history] == [("auto", "scheduler")]
    pool = await ok(await client.get("/v1/pool/customers"))
    assert pool["items"] == []


async def test_reclaimed_customers_wait_for_a_claim_not_for_the_drain(client, api):
    from app.db.session import session_scope
    from app.pool import service as pool

    await create_tiers(client)
    manager = await create_manager(client, capacity=100)
    rules = {"eligibility": [], "preferences": [], "placement": {"drain_pool": True}}
    await ok(await client.put("/v1/rules", json={"rules": rules}))
    await ok(await client.put("/v1/pool/policies/standard", json={"inactive_days": 1}))
    quiet = await create_customer(client, manager_id=manager["id"])
    later = datetime.now(UTC) + timedelta(days=2)
    async with session_scope(api.factory) as session:
        assert (await pool.sweep_reclaims(session, now=later)).reclaimed == 1
    assert await _drain_backlog(api.factory, later) == 0
    waiting = await ok(await client.get("/v1/pool/customers"))
    assert [(c["customer_id"], c["reason"]) for c in waiting["items"]] == [
        (quiet["id"], "reclaimed_inactive")
    ]
