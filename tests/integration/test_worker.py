"""The background worker (pgqueuer) runs scheduled handovers at their time, exactly once."""

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.settings import Settings
from app.worker import run_worker
from tests.integration.factories import create_customer, create_manager, create_tiers, ok
from tests.integration.test_handovers import act, create


async def _wait_for_state(client, handover_id, state, within=30.0):
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        body = await ok(await client.get(f"/v1/handovers/{handover_id}"))
        if body["state"] == state:
            return body
        await asyncio.sleep(0.3)
    raise AssertionError(f"handover never reached {state}: {body['state']}")


async def test_worker_executes_a_scheduled_handover_when_due(committed_client, fresh_database):
    client = committed_client
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=50)
    await create_manager(client, level=4, capacity=50)
    customers = [await create_customer(client, manager_id=leaving["id"]) for _ in range(3)]
    effective = datetime.now(UTC) + timedelta(seconds=2)
    handover = await create(client, leaving["id"], effective_at=effective.isoformat())
    await act(client, handover["id"], "plan")
    await act(client, handover["id"], "approve")

    engine = create_async_engine(fresh_database)
    async with engine.connect() as conn:
        queued = await conn.scalar(
            text("SELECT count(*) FROM pgqueuer WHERE entrypoint = 'execute_handover'")
        )
    await engine.dispose()
    assert queued == 1, "approval enqueues the execution in its own transaction"

    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(fresh_database, Settings(environment="test"), stop))
    try:
        done = await _wait_for_state(client, handover["id"], "completed")
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)

    assert done["counts"]["moved"] == 3
    executed_at = datetime.fromisoformat(done["updated_at"])
    assert executed_at >= effective, "not before its effective time"
    for c in customers:
        history = await ok(await client.get(f"/v1/customers/{c['id']}/history"))
        assert [r["reason"] for r in history["items"]].count("handover") == 1
