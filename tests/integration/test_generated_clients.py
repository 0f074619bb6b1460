"""Clients generated from the committed spec work: generated without a warning, they drive a
placement and a handover from start to outcome against the app."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.integration.conftest import create_api_key
from tests.integration.factories import STANDARD_TIERS

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi" / "openapi.json"
BIN = Path(sys.executable).parent
EXAMPLE_CSV = ROOT / "examples" / "customers.csv"
# The streamed import bodies (CSV, NDJSON) are not types the generator models; it is told they
# are files (bytes), so an import takes a ``File`` and sends it as application/octet-stream
# with ``format_`` saying which.
CONFIG = """content_type_overrides:
  text/csv: application/octet-stream
  application/x-ndjson: application/octet-stream
"""


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """``openapi-python-client`` run over the committed spec; fails on any warning."""
    where = tmp_path_factory.mktemp("python-client")
    config = where / "config.yaml"
    config.write_text(CONFIG)
    generated = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            f"--path={SPEC}",
            f"--output-path={where / 'baton_client'}",
            f"--config={config}",
            "--meta=none",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        timeout=120,
        check=False,
    )
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module("baton_client")
    finally:
        sys.path.remove(str(where))


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"baton_client.{name}")


async def test_the_generated_python_client_drives_a_placement_and_a_handover(api, python_client):
    models = _load("models")
    key = await create_api_key(api.factory, "admin", "generated-client")
    client = python_client.AuthenticatedClient(
        base_url="http://test",
        token=key,
        raise_on_unexpected_status=True,
        httpx_args={"transport": api.transport},
    )
    async with client:
        for tier in STANDARD_TIERS:
            created = await _load("api.tiers.create_tier").asyncio_detailed(
                client=client, body=models.TierCreate.from_dict(tier)
            )
            assert created.status_code == 201, created.content
            assert created.headers["Location"] == f"/v1/tiers/{tier['code']}"

        people = []
        for n in range(3):
            manager = await _load("api.managers.create_manager").asyncio(
                client=client,
                body=models.ManagerCreate.from_dict(
                    {
                        "name": f"Manager {n}",
                        "email": f"gen{n}@example.com",
                        "level": 4,
                        "capacity": 40,
                    }
                ),
            )
            assert isinstance(manager, models.ManagerOut), manager
            people.append(manager)
        leaving, *others = people

        pool = []
        for n in range(4):
            customer = await _load("api.customers.create_customer").asyncio(
                client=client,
                body=models.CustomerCreate.from_dict({"name": f"Client {n}", "tier": "standard"}),
            )
            assert isinstance(customer, models.CustomerOut), customer
            pool.append(customer)

        plan = await _load("api.assignments.plan_placement").asyncio(
            client=client, body=models.PlanRequest.from_dict({})
        )
        assert isinstance(plan, models.PlanOut), plan
        assert plan.plan_token and len(plan.decisions) == 4
        applied = await _load("api.assignments.apply_placement").asyncio(
            client=client, body=models.ApplyRequest.from_dict({"plan_token": plan.plan_token})
        )
        assert applied.applied is True and applied.moved == 4

        # A CRM file through the generated import call, then one of its rows by its CRM id.
        # (httpx's async client takes the payload as bytes; a sync client also takes a file.)
        imported = await _load("api.imports.import_customers").asyncio(
            client=client,
            body=python_client.types.File(payload=EXAMPLE_CSV.read_bytes()),
            format_=models.ImportCustomersFormatType0.CSV,
            mode=models.ImportCustomersMode.BEST_EFFORT,
        )
        assert isinstance(imported, models.ImportReport), imported
        assert (imported.created, imported.failed) == (4, 0), imported
        by_ref = await _load("api.customers.get_customer_by_ref").asyncio(
            external_ref="crm-acct-1001", client=client
        )
        assert isinstance(by_ref, models.CustomerOut) and by_ref.manager_id is None, by_ref

        # Move two customers to the leaving manager, then hand its portfolio over.
        for customer in pool[:2]:
            changed = await _load("api.customers.update_customer").asyncio(
                customer_id=customer.id,
                client=client,
                body=models.CustomerUpdate.from_dict({"manager_id": str(leaving.id)}),
            )
            assert str(changed.manager_id) == str(leaving.id), changed
        portfolio = await _load("api.managers.list_portfolio").asyncio(
            manager_id=leaving.id, client=client
        )
        owned = {c.id for c in portfolio.items}
        assert owned >= {pool[0].id, pool[1].id}

        handover = await _load("api.handovers.create_handover").asyncio(
            client=client,
            body=models.HandoverCreate.from_dict(
                {"from_manager_id": str(leaving.id), "reason": "departure"}
            ),
        )
        assert isinstance(handover, models.HandoverOut), handover
        for action in ("plan_handover", "approve_handover", "execute_handover"):
            # The action bodies are optional: the calls need none.
            handover = await _load(f"api.handovers.{action}").asyncio(
                handover_id=handover.id, client=client
            )
            assert isinstance(handover, models.HandoverOut), (action, handover)
        assert handover.state == "completed"
        outcome = await _load("api.handovers.get_outcome").asyncio(
            handover_id=handover.id, client=client
        )
        assert isinstance(outcome, models.OutcomeOut), outcome
        for customer in pool[:2]:
            now = await _load("api.customers.get_customer").asyncio(
                customer_id=customer.id, client=client
            )
            assert now.manager_id in {m.id for m in others}


TS_STORY = Path(__file__).resolve().parent / "ts" / "story.ts"
TS_PACKAGES = ("openapi-typescript@7", "openapi-fetch@0.17", "typescript@5")


def _run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_generated_typescript_types_check_a_story_with_openapi_fetch(tmp_path):
    """openapi-typescript types from the committed spec, and a story written against them
    with openapi-fetch that ``tsc --strict`` accepts."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    (tmp_path / "package.json").write_text('{"name": "baton-ts-story", "private": true}')
    installed = _run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", *TS_PACKAGES], tmp_path, 300
    )
    if installed.returncode != 0:
        if any(s in installed.stderr for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED")):
            pytest.skip(f"npm cannot reach its registry: {installed.stderr.strip()[:300]}")
        pytest.fail(installed.stderr)
    bin_dir = tmp_path / "node_modules" / ".bin"
    # Fields with a default are optional in a request: the generator must not make them required.
    generated = _run(
        [
            str(bin_dir / "openapi-typescript"),
            str(SPEC),
            "--output=baton.d.ts",
            "--default-non-nullable=false",
        ],
        tmp_path,
        120,
    )
    assert generated.returncode == 0, generated.stderr
    assert "warn" not in (generated.stdout + generated.stderr).lower(), generated.stderr
    shutil.copy(TS_STORY, tmp_path / "story.ts")
    checked = _run(
        [
            str(bin_dir / "tsc"),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--skipLibCheck",
            "story.ts",
        ],
        tmp_path,
        180,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
