"""A change of what the hard rules decide (a new rule set, a tier's minimum level) and a move
decided under the old rules, in two transactions at once: the owner the move sets is either
checked by the change's scan or decided under the new rules, never neither."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.assignments import compliance
from app.customers import service as customers_service
from app.customers.schemas import CustomerUpdate
from app.db.session import create_session_factory
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)
from tests.integration.locks import lock_waited_or_done

SENIORS_ONLY = {
    "eligibility": [
        {"id": "seniors_only", "conditions": [{"field": "manager.level", "op": "gte", "value": 5}]}
    ]
}


async def _change_while_a_move_is_under_way(
    client: httpx.AsyncClient,
    url: str,
    change: Callable[[], Awaitable[httpx.Response]],
    *,
    tier: str = "standard",
) -> tuple[httpx.Response, dict[str, Any], dict[str, Any]]:
    """A junior (level 3) is made a customer's owner in a transaction that has decided and
    written the move but not committed while ``change`` is sent; then it commits."""
    junior = await create_manager(client, level=3, capacity=100)
    customer = await create_customer(client, tier=tier)
    engine = create_async_engine(url)
    try:
        async with create_session_factory(engine)() as mover:
            await customers_service.update_customer(
                mover,
                customer_id=uuid.UUID(customer["id"]),
                data=CustomerUpdate(manager_id=uuid.UUID(junior["id"])),
                force=False,
                actor="racing-mover",
            )
            sent = asyncio.create_task(change())
            await lock_waited_or_done(url, sent)
            await mover.commit()
        response = await sent
    finally:
        await engine.dispose()
    return response, customer, junior


async def _open_violations(client: httpx.AsyncClient, customer_id: str) -> list[dict[str, Any]]:
    page = await ok(await client.get("/v1/violations", params={"customer_id": customer_id}))
    return [v for v in page["items"] if v["customer_id"] == customer_id]


async def test_a_rule_set_stored_while_a_move_is_under_way_records_the_owner_it_now_rejects(
    committed_client, fresh_database
):
    client = committed_client
    await create_tiers(client)
    response, customer, junior = await _change_while_a_move_is_under_way(
        client, fresh_database, lambda: client.put("/v1/rules", json={"rules": SENIORS_ONLY})
    )
    body = await ok(response)
    assert [v["customer_id"] for v in body["violations_detected"]] == [customer["id"]], body
    owned = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert owned["manager_id"] == junior["id"]
    (violation,) = await _open_violations(client, customer["id"])
    assert violation["manager_id"] == junior["id"]
    assert [r["rule"] for r in violation["rules"]] == ["seniors_only"]


async def test_a_tier_minimum_raised_while_a_move_is_under_way_records_the_owner_below_it(
    committed_client, fresh_database
):
    client = committed_client
    await create_tiers(client)
    response, customer, junior = await _change_while_a_move_is_under_way(
        client,
        fresh_database,
        lambda: client.patch("/v1/tiers/standard", json={"min_manager_level": 5}),
    )
    body = await ok(response)
    assert [v["customer_id"] for v in body["violations_detected"]] == [customer["id"]], body
    (violation,) = await _open_violations(client, customer["id"])
    assert violation["manager_id"] == junior["id"]


async def test_a_rule_set_change_held_back_too_long_is_a_503_and_stores_nothing(
    committed_client, fresh_database, monkeypatch
):
    client = committed_client
    await create_tiers(client)
    before = await ok(await client.get("/v1/rules"))
    monkeypatch.setattr(compliance, "HOLD_WAIT", "50ms")
    engine = create_async_engine(fresh_database)
    customer = await create_customer(client)
    try:
        async with engine.connect() as importer:  # a long writer of customers
            await importer.execute(
                text("UPDATE customers SET name = name WHERE id = :id"), {"id": customer["id"]}
            )
            response = await client.put("/v1/rules", json={"rules": SENIORS_ONLY})
            await importer.rollback()
    finally:
        await engine.dispose()
    problem = assert_problem(response, 503)
    assert response.headers["Retry-After"] == "2"
    assert "nothing was changed" in problem["detail"]
    after = await ok(await client.get("/v1/rules"))
    assert after["version"] == before["version"]
    assert await ok(await client.put("/v1/rules", json={"rules": SENIORS_ONLY})), (
        "once the writer is done"
    )
