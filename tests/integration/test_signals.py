"""Stopping: `baton serve` on its own embedded Postgres, stopped with SIGTERM (what systemd,
containers and CI send) or SIGINT (Ctrl+C), finishes the request in flight, exits 0, and leaves
no Postgres running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.integration.live import ROOT, baton_env, free_port, tracebacks


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _start(command: list[str], env: dict[str, str], log: IO[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_stops_server_worker_and_embedded_postgres(tmp_path: Path, sig):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"BATON_DATA_DIR": str(tmp_path / "data"), "BATON_RATE_LIMIT": ""}
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = _start(
            [str(Path(sys.executable).parent / "baton"), "serve", "--port", str(port)], env, log
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                deadline = time.monotonic() + 120
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    assert server.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, "never ready"
                    await asyncio.sleep(0.3)
                pid_file = tmp_path / "data" / "pgdata" / "postmaster.pid"
                postgres_pid = int(pid_file.read_text().split()[0])
                assert _alive(postgres_pid)
                # A request in flight when the signal arrives (its body half sent) still gets
                # its answer once the body is complete.
                gate = asyncio.Event()

                async def slow_body():
                    yield b'{"code": "gold", '
                    await gate.wait()
                    yield b'"name": "Gold"}'

                in_flight = asyncio.create_task(
                    http.post(
                        "/v1/tiers",
                        content=slow_body(),
                        headers={"content-type": "application/json"},
                    )
                )
                await asyncio.sleep(0.5)
                server.send_signal(sig)
                await asyncio.sleep(1)
                assert server.poll() is None, "the server waits for the request in flight"
                gate.set()
                answered = await in_flight
                assert answered.status_code == 401, answered.text  # no key: refused, not cut
            code = await asyncio.to_thread(server.wait, 60)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    output = log_path.read_text()
    assert code == 0, output[-3000:]
    assert not tracebacks(output), output[-3000:]
    deadline = time.monotonic() + 10
    while _alive(postgres_pid):
        assert time.monotonic() < deadline, "the embedded Postgres is still running"
        await asyncio.sleep(0.2)
    assert not pid_file.exists()


async def test_a_worker_told_to_stop_while_it_starts_stops(fresh_database, tmp_path: Path):
    """SIGTERM as soon as `baton worker` says it started (its modules still loading, its event
    loop not yet running): it exits 0 promptly, instead of running on with nobody to stop it."""
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = _start(
            [str(Path(sys.executable).parent / "baton"), "worker"],
            baton_env(fresh_database, tmp_path),
            log,
        )
        try:
            deadline = time.monotonic() + 60
            while "worker started" not in log_path.read_text():
                assert worker.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "never started"
                await asyncio.sleep(0.01)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0, log_path.read_text()
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert not tracebacks(log_path.read_text()), log_path.read_text()
