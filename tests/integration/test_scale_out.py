"""Scale-out: two API processes and two workers on one database, with a mixed workload
(placements, manual moves, a scheduled handover, outbound webhooks). Afterwards every event
reached the subscriber, the handover ran once, and `baton check` finds no violation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx

from app.auth.keys import generate_key
from tests.integration.live import api_server, worker_process
from tests.integration.test_faults import _assert_clean, _check_invariants, _setup
from tests.integration.webhook_receiver import running_receiver


async def _until(check, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.5)


async def test_two_api_processes_and_two_workers_share_the_work(
    fresh_database, tmp_path, monkeypatch
):
    monkeypatch.setenv("BATON_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")
    key = generate_key()
    headers = {"Authorization": f"Bearer {key}"}
    (tmp_path / "w1").mkdir()
    (tmp_path / "w2").mkdir()
    with (
        running_receiver() as receiver,
        api_server(fresh_database, key, tmp_path, name="api-a") as a,
        api_server(fresh_database, key, tmp_path, name="api-b") as b,
        worker_process(fresh_database, tmp_path / "w1"),
        worker_process(fresh_database, tmp_path / "w2"),
    ):
        async with (
            httpx.AsyncClient(base_url=a, headers=headers, timeout=120) as http_a,
            httpx.AsyncClient(base_url=b, headers=headers, timeout=120) as http_b,
        ):
            subscription = await http_a.post(
                "/v1/webhook-subscriptions",
                json={
                    "url": receiver.url,
                    "event_types": ["customer.assigned", "handover.completed"],
                },
            )
            assert subscription.status_code == 201, subscription.text
            secret = subscription.json()["secret"]
            managers = await _setup(http_a, managers=6, customers=60)
            for i in range(30):
                client = http_a if i % 2 else http_b
                r = await client.post("/v1/customers", json={"name": f"P{i}", "tier": "key"})
                r.raise_for_status()
            handover = await http_b.post(
                "/v1/handovers",
                json={
                    "from_manager_id": managers[0]["id"],
                    "reason": "departure",
                    "effective_at": (datetime.now(UTC) + timedelta(seconds=3)).isoformat(),
                },
            )
            assert handover.status_code == 201, handover.text
            hid = handover.json()["id"]
            for action in ("plan", "approve"):
                _assert_clean(await http_b.post(f"/v1/handovers/{hid}/{action}"))

            async def moves(client: httpx.AsyncClient, offset: int) -> None:
                page = (await client.get("/v1/customers", params={"limit": 20})).json()["items"]
                for i, customer in enumerate(page):
                    target = managers[1 + (i + offset) % 5]["id"]
                    _assert_clean(
                        await client.patch(
                            f"/v1/customers/{customer['id']}", json={"manager_id": target}
                        )
                    )

            await asyncio.gather(
                http_a.post("/v1/assignments/apply", json={"unassigned": True, "review": "skip"}),
                http_b.post("/v1/assignments/apply", json={"unassigned": True, "review": "skip"}),
                moves(http_a, 0),
                moves(http_b, 2),
            )

            async def handover_done() -> bool:
                state = (await http_a.get(f"/v1/handovers/{hid}")).json()["state"]
                return state == "completed"

            await _until(handover_done)

            async def all_delivered() -> bool:
                pending = await http_a.get("/v1/webhook-deliveries", params={"status": "pending"})
                return pending.json()["items"] == []

            await _until(all_delivered)
            delivered = await http_a.get(
                "/v1/webhook-deliveries", params={"status": "delivered", "limit": 500}
            )
            deliveries = delivered.json()["items"]

    assert len(deliveries) > 60, "moves and the handover were announced"
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(ids) == len(deliveries), "every delivery arrived (duplicates share a webhook-id)"
    for request in receiver.received:
        request.verify(secret)
    completed = receiver.of_type("handover.completed")
    assert len({r.headers["webhook-id"] for r in completed}) == 1, "the handover ran once"
    result = _check_invariants(fresh_database, tmp_path)
    assert result.returncode == 0 and "All invariants hold" in result.stderr, result.stderr
