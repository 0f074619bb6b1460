"""Handovers through the API: life cycle per strategy, scope, overrides, interim owner,
briefings, checklist, refusal, transfer limit, cover, rollback, cancel, illegal transitions."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from app.settings import get_settings
from tests.integration.factories import (
    collect_pages,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)

BRIEFING = {
    "key_contacts": [{"name": "Wang Fang", "role": "CFO"}],
    "open_projects": [{"name": "ERP rollout", "progress": 60}],
    "contract_status": "renewal due in March",
    "outstanding_amount": "12000.00",
    "notes": "Prefers WeChat.",
}


async def portfolio(client: httpx.AsyncClient, *, customers: int = 4, **manager: Any) -> dict:
    """Tiers, a leaving manager with ``customers`` standard customers, and two colleagues."""
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=100, **manager)
    a = await create_manager(client, level=4, capacity=40)
    b = await create_manager(client, level=4, capacity=40)
    owned = [
        await create_customer(client, tier="standard", manager_id=leaving["id"])
        for _ in range(customers)
    ]
    return {"leaving": leaving, "a": a, "b": b, "customers": owned}


async def create(client: httpx.AsyncClient, manager_id: str, **fields: Any) -> dict:
    body = {"from_manager_id": manager_id, "reason": "departure", **fields}
    return await ok(await client.post("/v1/handovers", json=body), 201)


async def act(client: httpx.AsyncClient, handover_id: str, action: str, **body: Any) -> dict:
    return await ok(await client.post(f"/v1/handovers/{handover_id}/{action}", json=body or None))


async def items(client: httpx.AsyncClient, handover_id: str) -> dict[str, dict]:
    pages = await collect_pages(client, f"/v1/handovers/{handover_id}/items", limit=50)
    return {i["customer_id"]: i for i in itertools.chain.from_iterable(pages)}


async def owner(client: httpx.AsyncClient, customer_id: str) -> str | None:
    return (await ok(await client.get(f"/v1/customers/{customer_id}")))["manager_id"]


async def history(client: httpx.AsyncClient, customer_id: str) -> list[dict]:
    return (await ok(await client.get(f"/v1/customers/{customer_id}/history")))["items"]


async def run_through(client: httpx.AsyncClient, handover_id: str) -> dict:
    await act(client, handover_id, "plan")
    await act(client, handover_id, "approve")
    return await act(client, handover_id, "execute")


@pytest.fixture
def settings_env(monkeypatch):
    """Change a setting for one test (services read the cached settings)."""

    def set_(name: str, value: Any) -> None:
        monkeypatch.setenv(f"BATON_{name.upper()}", str(value))
        get_settings.cache_clear()

    yield set_
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.parametrize("strategy", ["balanced", "optimal", "round_robin", "successor"])
async def test_life_cycle_moves_every_customer_through_the_ledger(client, strategy):
    p = await portfolio(client)
    extra = {"successor_id": p["a"]["id"]} if strategy == "successor" else {}
    h = await create(client, p["leaving"]["id"], strategy=strategy, **extra)
    assert h["state"] == "draft" and h["counts"]["total"] == 4
    assert h["allowed_actions"] == ["plan", "cancel"]
    manager = await ok(await client.get(f"/v1/managers/{p['leaving']['id']}"))
    assert manager["status"] == "departing"

    planned = await act(client, h["id"], "plan")
    assert planned["state"] == "planned" and planned["counts"]["proposed"] == 4
    proposals = await items(client, h["id"])
    colleagues = {p["a"]["id"], p["b"]["id"]}
    for item in proposals.values():
        assert item["proposed_manager_id"] in colleagues
        assert item["status"] == "proposed" and item["explanation"] is not None
    if strategy == "successor":
        assert {i["proposed_manager_id"] for i in proposals.values()} == {p["a"]["id"]}

    await act(client, h["id"], "approve")
    done = await act(client, h["id"], "execute")
    assert done["state"] == "completed" and done["counts"]["moved"] == 4
    assert [e["to_state"] for e in done["audit"]] == [
        "draft",
        "planned",
        "approved",
        "executing",
        "completed",
    ]
    assert all(e["actor"] for e in done["audit"])
    for customer in p["customers"]:
        item = proposals[customer["id"]]
        assert await owner(client, customer["id"]) == item["proposed_manager_id"]
        latest = (await history(client, customer["id"]))[0]
        assert latest["reason"] == "handover" and latest["handover_id"] == h["id"]
        assert latest["manager_id"] == item["proposed_manager_id"]
    manager = await ok(await client.get(f"/v1/managers/{p['leaving']['id']}"))
    assert manager["status"] == "departed" and manager["customer_count"] == 0
    after = await items(client, h["id"])
    assert {i["status"] for i in after.values()} == {"moved"}
    assert {i["notification_status"] for i in after.values()} == {"pending"}
