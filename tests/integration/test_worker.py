"""The background worker (pgqueuer) runs scheduled handovers at their time, exactly once."""

import asyncio
import os
import signal
import subprocess
import sys
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
        queued = (
            await conn.execute(
                text("SELECT execute_after FROM pgqueuer WHERE entrypoint = 'execute_handover'")
            )
        ).all()
    await engine.dispose()
    assert len(queued) == 1, "approval enqueues the execution in its own transaction"
    # Due at the effective time on the database's clock, never before it.
    assert queued[0][0] == datetime.fromisoformat(handover["effective_at"])

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


async def test_a_job_whose_worker_is_killed_mid_execution_is_retried_and_done_once(
    committed_client, fresh_database
):
    client = committed_client
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=50)
    await create_manager(client, level=4, capacity=50)
    customers = [await create_customer(client, manager_id=leaving["id"]) for _ in range(3)]
    handover = await create(
        client,
        leaving["id"],
        effective_at=(datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
    )
    await act(client, handover["id"], "plan")
    await act(client, handover["id"], "approve")

    engine = create_async_engine(fresh_database, isolation_level="AUTOCOMMIT")
    # The first worker hangs inside the execution, holding its transaction open.
    async with engine.connect() as conn:
        await conn.exec_driver_sql(
            "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$"
        )
        await conn.exec_driver_sql(
            "CREATE TRIGGER stall BEFORE INSERT ON assignments FOR EACH ROW "
            "WHEN (NEW.reason = 'handover') EXECUTE FUNCTION stall()"
        )
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database,
        "BATON_WORKER_HEARTBEAT_TIMEOUT_S": "3",
        "BATON_LOG_LEVEL": "WARNING",
    }
    first = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env)  # noqa: ASYNC220
    try:
        async with engine.connect() as conn:
            for _ in range(200):  # wait until the first worker is stuck in the stalled insert
                stalled = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE query LIKE '%INSERT INTO assignments%' AND state = 'active' "
                        "AND pid <> pg_backend_pid()"
                    )
                )
                if stalled:
                    break
                await asyncio.sleep(0.2)
            assert stalled, "the worker never started the execution"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    async with engine.connect() as conn:
        await conn.exec_driver_sql("DROP TRIGGER stall ON assignments")
        # The killed worker's session dies with it; nothing of the execution was committed.
        await conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE '%INSERT INTO assignments%' AND pid <> pg_backend_pid()"
        )
    assert (await ok(await client.get(f"/v1/handovers/{handover['id']}")))["state"] == "approved"

    second = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env)  # noqa: ASYNC220
    try:
        done = await _wait_for_state(client, handover["id"], "completed", within=60)
    finally:
        second.terminate()
        second.wait(20)
        await engine.dispose()
    assert done["counts"]["moved"] == 3
    for c in customers:
        history = await ok(await client.get(f"/v1/customers/{c['id']}/history"))
        assert [r["reason"] for r in history["items"]].count("handover") == 1
