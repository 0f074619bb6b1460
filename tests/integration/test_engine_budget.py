"""The engine runs off the event loop within a time budget: a slow plan stops nobody else, and
a plan over budget is a clear 503, with nothing written."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app import engine
from app.settings import get_settings
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


@pytest.fixture
def budget(monkeypatch):
    def set_budget(seconds: float) -> None:
        monkeypatch.setenv("BATON_ENGINE_BUDGET_S", str(seconds))
        get_settings.cache_clear()

    yield set_budget
    monkeypatch.delenv("BATON_ENGINE_BUDGET_S", raising=False)
    get_settings.cache_clear()


async def test_plans_over_budget_are_503_and_change_nothing(client, budget):
    await create_tiers(client)
    busy = await create_manager(client, level=3, capacity=10)
    await create_manager(client, level=3, capacity=10)
    owned = [await create_customer(client, manager_id=busy["id"]) for _ in range(5)]
    pool = [await create_customer(client) for _ in range(3)]
    budget(1e-9)  # past the deadline at the engine's first checkpoint

    for path, body in [
        ("/v1/assignments/plan", {}),
        ("/v1/assignments/apply", {"review": "skip"}),
        ("/v1/rebalance", {"dry_run": False, "target_utilization": 0.5}),
        # (``balanced`` places one customer without the engine: see ``engine.single``)
        (f"/v1/customers/{pool[0]['id']}/assign", {"strategy": "round_robin"}),
    ]:
        problem = assert_problem(await client.post(path, json=body), 503)
        assert problem["code"] == "plan_over_budget", path
        assert problem["budget_s"] == 1e-9
        assert "BATON_ENGINE_BUDGET_S" in problem["detail"]

    for c in pool:
        assert (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] is None
    for c in owned:
        assert (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] == busy["id"]

    budget(30)
    applied = await ok(await client.post("/v1/assignments/apply", json={"review": "skip"}))
    assert applied["moved"] == 3


async def test_a_slow_plan_leaves_other_requests_answered(api, client, budget, monkeypatch):
    await create_tiers(client)
    await create_manager(client, level=3, capacity=10)
    await create_customer(client)
    started, release = threading.Event(), threading.Event()
    real = engine.plan_assignments

    def slow_plan(*args, **kwargs):
        started.set()
        release.wait(timeout=10)  # the engine computing, between two checkpoints
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "plan_assignments", slow_plan)
    plan = asyncio.create_task(client.post("/v1/assignments/plan", json={}))
    assert await asyncio.to_thread(started.wait, 10)
    health = await api.anonymous().get("/healthz")
    assert health.status_code == 200, "answered while the plan computes"
    assert not plan.done()
    release.set()
    assert (await ok(await plan))["customers_total"] == 1


async def test_a_plan_stuck_past_its_budget_is_abandoned(client, budget, monkeypatch):
    await create_tiers(client)
    await create_manager(client, level=3, capacity=10)
    customer = await create_customer(client)
    release = threading.Event()
    real = engine.plan_assignments

    def stuck_plan(*args, **kwargs):
        release.wait(timeout=10)  # never reaches a checkpoint before the request gives up
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "plan_assignments", stuck_plan)
    budget(0.2)
    try:
        response = await client.post(
            f"/v1/customers/{customer['id']}/assign", json={"strategy": "round_robin"}
        )
    finally:
        release.set()  # the abandoned thread goes on and stops at its first checkpoint
    assert assert_problem(response, 503)["code"] == "plan_over_budget"
    assert (await ok(await client.get(f"/v1/customers/{customer['id']}")))["manager_id"] is None
