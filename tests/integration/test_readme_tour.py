"""The README's API tour runs: its ``sh`` blocks, in order, as one ``set -euo pipefail``
script against ``baton serve --demo`` on a free port, with a local receiver for the webhook
subscription. Any command that fails (an HTTP error included: the tour's curl uses
``--fail-with-body``) fails the test."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.integration.live import ROOT, free_port
from tests.integration.webhook_receiver import running_receiver

README = ROOT / "README.md"
TOUR_HEADING = "## API tour"


def tour_script() -> str:
    """The ``sh`` blocks under the tour heading (up to the next ``## `` heading), in order."""
    text = README.read_text()
    start = text.index(f"\n{TOUR_HEADING}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)
    assert blocks, "the tour has no sh blocks"
    return "set -euo pipefail\n" + "\n".join(blocks)


@contextlib.contextmanager
def demo_server(workdir: Path, port: int, **env: str) -> Iterator[str]:
    """``baton serve --demo`` in ``workdir`` (its own embedded Postgres in ``.baton``)."""
    log_path = workdir / "serve.log"
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DATABASE_URL"))
    }
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "baton"), "serve", "--demo", "--port", str(port)],
            cwd=workdir,
            env={**environment, "BATON_LOG_LEVEL": "WARNING", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.3)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=60)


def test_the_readme_tour_runs_against_a_demo_server(tmp_path):
    workdir = tmp_path / "tour"
    workdir.mkdir()
    (workdir / "examples").symlink_to(ROOT / "examples")  # the tour runs from a checkout
    port = free_port()
    with (
        running_receiver() as receiver,
        demo_server(workdir, port, BATON_WEBHOOKS_ALLOW_PRIVATE_TARGETS="true") as url,
    ):
        # The banner's curl hint is one line whatever the terminal.
        banner = (workdir / "serve.log").read_text()
        (hint,) = [line for line in banner.splitlines() if "curl:" in line]
        key = (workdir / ".baton" / "demo-api-key").read_text().strip()
        assert hint.endswith(f"-H 'Authorization: Bearer {key}'"), hint
        ran = subprocess.run(
            ["bash", "-c", tour_script()],
            cwd=workdir,
            env={**os.environ, "PORT": str(port), "RECEIVER": receiver.url},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert ran.returncode == 0, f"{ran.stderr[-3000:]}\n--- stdout ---\n{ran.stdout[-3000:]}"
        # The subscription's events reach the local receiver, signed.
        deadline = time.monotonic() + 120
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.5)
        assert receiver.received, "no webhook delivered to the tour's receiver"
        assert all("webhook-signature" in r.headers for r in receiver.received)
        assert httpx.get(f"{url}/healthz").status_code == 200
