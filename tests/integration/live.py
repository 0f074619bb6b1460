"""Run Baton as real processes (uvicorn, the worker) for fuzzing and fault tests."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def baton_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "BATON_RUN_WORKER": "false",
        "BATON_RATE_LIMIT": "",
        "BATON_AUTH_FAILURE_LIMIT": "",  # fuzzers send bad keys on purpose (ignored_auth)
        "BATON_LOG_LEVEL": "WARNING",
        "BATON_DATA_DIR": str(data_dir),
        **extra,
    }


def tracebacks(output: str, *, except_from: tuple[str, ...] = ()) -> list[str]:
    """The log records of ``output`` (console format) that carry a traceback, leaving out
    those of the loggers named in ``except_from``."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\dT)", output)
    return [
        r
        for r in records
        if "Traceback" in r
        and not any(r.split("\n", 1)[0].rstrip().endswith(f"[{n}]") for n in except_from)
    ]


@contextlib.contextmanager
def api_server(
    database_url: str,
    admin_key: str,
    data_dir: Path,
    name: str = "api",
    tracebacks_from: tuple[str, ...] = (),
    **env_extra: str,
) -> Iterator[str]:
    """uvicorn serving the app on ``database_url`` with ``admin_key`` bootstrapped; yields the
    base URL. Fails the test if the server logged a traceback (other than from the loggers in
    ``tracebacks_from``)."""
    port = free_port()
    env = baton_env(database_url, data_dir, BATON_BOOTSTRAP_ADMIN_KEY=admin_key, **env_extra)
    log_path = data_dir / f"{name}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"),
                *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the server did not become ready"
                time.sleep(0.2)
            yield url
        finally:
            _stop(server, timeout=20, log_path=log_path, what="server")
    output = log_path.read_text()
    unexpected = tracebacks(output, except_from=tracebacks_from)
    assert not unexpected, "\n".join(unexpected)[:8000]


@contextlib.contextmanager
def worker_process(
    database_url: str, data_dir: Path, **extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``baton worker`` on ``database_url`` (``extra``: more environment)."""
    log_path = data_dir / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "baton"), "worker"],
            cwd=ROOT,
            env=baton_env(database_url, data_dir, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield worker
        finally:
            if worker.poll() is None:
                _stop(worker, timeout=30, log_path=log_path, what="worker")


def _stop(process: subprocess.Popen[bytes], *, timeout: float, log_path: Path, what: str) -> None:
    """SIGTERM ``process`` and wait; one that does not stop in ``timeout`` seconds is killed
    (nothing is left running after a test) and fails the test with its log."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(
            f"the {what} did not stop on SIGTERM:\n" + log_path.read_text()[-5000:]
        ) from None
