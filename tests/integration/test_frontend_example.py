"""The example front-end (examples/portfolio: a static page using the TypeScript client that
openapi-typescript + openapi-fetch generate from the spec) lists a manager's portfolio from
another origin in a real browser (headless Chromium), when Baton allows that origin with
``BATON_CORS_ORIGINS``; without the setting the page cannot read the API."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from app.auth.keys import generate_key
from tests.integration.live import ROOT, api_server

EXAMPLE = ROOT / "examples" / "portfolio"
OPEN_PAGE = Path(__file__).resolve().parent / "browser" / "open_page.mjs"
CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT = "playwright-core@1.65.1"


def _run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def built_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example built as its README says (npm install, npm run build) in a copy of the
    checkout's layout, with playwright-core beside it to drive the browser."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (.ci/system-packages installs it)")
    root = tmp_path_factory.mktemp("frontend")
    (root / "openapi").symlink_to(ROOT / "openapi")
    page = root / "examples" / "portfolio"
    shutil.copytree(
        EXAMPLE, page, ignore=shutil.ignore_patterns("node_modules", "dist", "vendor", "*.d.ts")
    )
    for command in (
        [npm, "install", "--no-audit", "--no-fund", "--silent"],
        [npm, "install", "--no-audit", "--no-fund", "--silent", "--no-save", PLAYWRIGHT],
    ):
        installed = _run(command, page, 300)
        if installed.returncode != 0:
            if any(s in installed.stderr for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED")):
                pytest.skip(f"npm cannot reach its registry: {installed.stderr.strip()[:300]}")
            pytest.fail(installed.stderr)
    built = _run([npm, "run", "build"], page, 300)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (page / "dist" / "portfolio.js").exists() and (page / "vendor").is_dir()
    shutil.copy(OPEN_PAGE, page / "open_page.mjs")
    return page


@contextlib.contextmanager
def static_origin(directory: Path) -> Iterator[str]:
    """``directory`` served over HTTP on a port of its own: another origin than Baton's."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _open(page: Path, url: str) -> dict:
    opened = _run(["node", "open_page.mjs", url], page, 120)
    assert opened.returncode == 0, opened.stdout + opened.stderr
    return json.loads(opened.stdout.strip().splitlines()[-1])


async def _portfolio(base: str, admin_key: str) -> tuple[str, list[str]]:
    """A manager (CRM id ``crm-owner-7``) with three customers, and a viewer key."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        tier = {"code": "standard", "name": "Standard", "rank": 3, "weight": 1}
        created = await http.post("/v1/tiers", json={**tier, "min_manager_level": 1})
        assert created.status_code == 201, created.text
        manager = await http.post(
            "/v1/managers",
            json={
                "name": "Li Na",
                "email": "li.na@example.com",
                "level": 3,
                "capacity": 40,
                "external_ref": "crm-owner-7",
            },
        )
        assert manager.status_code == 201, manager.text
        names = []
        for name in ("Harbor Freight Lines", "Lumen Dental Group", "Pine & Ash Studio"):
            customer = await http.post(
                "/v1/customers",
                json={"name": name, "tier": "standard", "manager_id": manager.json()["id"]},
            )
            assert customer.status_code == 201, customer.text
            names.append(name)
        viewer = await http.post("/v1/api-keys", json={"name": "portfolio-page", "role": "viewer"})
        assert viewer.status_code == 201, viewer.text
        return viewer.json()["key"], names


async def test_the_example_page_lists_a_portfolio_from_another_origin(
    built_page, fresh_database, tmp_path
):
    admin_key = generate_key()
    with static_origin(built_page) as origin:
        with api_server(fresh_database, admin_key, tmp_path, BATON_CORS_ORIGINS=origin) as base:
            viewer_key, names = await _portfolio(base, admin_key)
            query = urlencode({"api": base, "manager": "crm-owner-7", "key": viewer_key})
            shown = _open(built_page, f"{origin}/index.html?{query}")
            assert shown["status"] == "3 customers", shown
            assert shown["heading"] == "Li Na"
            assert sorted(row["cells"][0] for row in shown["rows"]) == sorted(names), shown

        # The same page and data, Baton without the setting: the browser keeps the API's
        # answers from the page.
        with api_server(fresh_database, admin_key, tmp_path, name="api-no-cors") as base:
            async with httpx.AsyncClient() as http:
                preflight = await http.options(
                    f"{base}/v1/managers/by-ref/crm-owner-7",
                    headers={
                        "Origin": origin,
                        "Access-Control-Request-Method": "GET",
                        "Access-Control-Request-Headers": "authorization",
                    },
                )
            assert "access-control-allow-origin" not in preflight.headers
            query = urlencode({"api": base, "manager": "crm-owner-7", "key": viewer_key})
            shown = _open(built_page, f"{origin}/index.html?{query}")
            assert shown["status"].startswith("Cannot read the portfolio"), shown
            assert shown["rows"] == [] and shown["heading"] == "Portfolio", shown
