"""Schemathesis against a live server (uvicorn on 127.0.0.1) from the committed spec.

Every operation, authenticated as admin; the run fails on any server error, a response that
does not match its schema or content type, or a status code the spec does not document. The
number of examples per operation is bounded (and the seed fixed) so the suite stays fast and
repeatable; set BATON_FUZZ_EXAMPLES to dig deeper locally.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.auth.keys import generate_key

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi" / "openapi.json"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(fresh_database: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """uvicorn serving the app on a database of its own, with a bootstrap admin key."""
    key = generate_key()
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database,
        "BATON_BOOTSTRAP_ADMIN_KEY": key,
        "BATON_RUN_WORKER": "false",
        "BATON_RATE_LIMIT": "",
        "BATON_LOG_LEVEL": "WARNING",
        "BATON_DATA_DIR": str(tmp_path),
    }
    log = (tmp_path / "server.log").open("w")
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
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        else:
            pytest.fail("the server did not become ready")
        yield url, key
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
        output = (tmp_path / "server.log").read_text()
        assert "Traceback" not in output, output[-5000:]


def _seed(url: str, key: str) -> None:
    """A few real resources, so reads and changes reach more than 404s."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for rank, code in enumerate(("strategic", "key", "standard"), start=1):
            http.post(
                "/v1/tiers",
                json={
                    "code": code,
                    "name": code,
                    "rank": rank,
                    "weight": rank,
                    "min_manager_level": 1,
                },
            ).raise_for_status()
        for i in range(3):
            http.post(
                "/v1/managers",
                json={"name": f"M{i}", "email": f"fuzz{i}@example.com", "level": 4, "capacity": 50},
            ).raise_for_status()
        for i in range(10):
            http.post(
                "/v1/customers", json={"name": f"C{i}", "tier": "standard"}
            ).raise_for_status()


def test_schemathesis_finds_nothing(live_server):
    url, key = live_server
    _seed(url, key)
    examples = os.environ.get("BATON_FUZZ_EXAMPLES", "6")
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        str(SPEC),
        "--url",
        url,
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        examples,
        "--seed",
        "20261125",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--no-color",
        "--output-truncate",
        "true",
    ]
    started = time.monotonic()
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.fuzz_hooks"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    elapsed = time.monotonic() - started
    if os.environ.get("BATON_FUZZ_LOG"):
        Path(os.environ["BATON_FUZZ_LOG"]).write_text(result.stdout)
    assert result.returncode == 0, f"after {elapsed:.0f} s:\n{result.stdout[-20000:]}"
