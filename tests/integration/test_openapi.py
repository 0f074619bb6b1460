"""The committed spec is what the app serves, and every operation is documented honestly."""

import json
from pathlib import Path

import pytest

from app.main import create_app
from app.settings import Settings

SPEC_FILE = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def spec():
    return create_app(Settings(environment="test")).openapi()


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def test_committed_spec_matches_the_app(spec):
    committed = json.loads(SPEC_FILE.read_text())
    assert committed == spec, "openapi/openapi.json is stale: run `make openapi` and commit it"


def test_every_operation_has_a_summary_tags_and_docstring(spec):
    for name, operation in _operations(spec):
        assert operation.get("summary"), f"{name} has no summary"
        assert operation.get("tags"), f"{name} has no tags"
        assert operation.get("description"), f"{name} has no description (docstring)"


def test_every_error_response_is_problem_json(spec):
    checked = 0
    for name, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith(("2", "3")):
                continue
            content = response.get("content", {})
            assert list(content) == ["application/problem+json"], f"{name} {status}: {content}"
            checked += 1
    assert checked > 0


def test_the_api_is_versioned_and_lists_are_paged(spec):
    for path in spec["paths"]:
        assert path.startswith("/v1/") or path in {"/healthz", "/readyz", "/metrics"}, path
    for path in (
        "/v1/tiers",
        "/v1/managers",
        "/v1/managers/{manager_id}/customers",
        "/v1/customers",
        "/v1/customers/{customer_id}/history",
    ):
        get = spec["paths"][path]["get"]
        params = {p["name"]: p for p in get["parameters"]}
        assert {"cursor", "limit"} <= set(params), f"GET {path} is not paginated"
        assert params["limit"]["schema"]["anyOf"][0]["maximum"] == 500
        assert set(get["responses"]["200"]["content"]["application/json"]["schema"]) == {"$ref"}
