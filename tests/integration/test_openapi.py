"""The committed spec is what the app serves, and every operation is documented honestly."""

import json
import re
from importlib.metadata import version
from pathlib import Path

import jsonschema_rs
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


def test_operation_ids_are_camel_case_endpoint_names_and_unique(spec):
    ids = [operation["operationId"] for _, operation in _operations(spec)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for operation_id in ids:
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", operation_id), operation_id
    operations = dict(_operations(spec))
    assert operations["GET /v1/customers"]["operationId"] == "listCustomers"
    assert operations["POST /v1/handovers/{handover_id}/plan"]["operationId"] == "planHandover"


def test_schema_names_are_unique_and_the_version_is_the_package_version(spec):
    assert not [n for n in spec["components"]["schemas"] if n.endswith(("-Input", "-Output"))]
    assert spec["info"]["version"] == version("baton")


def test_every_error_response_references_the_one_problem_component(spec):
    problem = spec["components"]["schemas"]["Problem"]
    assert {"code", "errors", "violations", "changed", "customer_count"} <= set(
        problem["properties"]
    )
    for name, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if not status.startswith(("2", "3")):
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, f"{name} {status}"


def test_response_headers_are_documented_where_they_are_sent(spec):
    headers = spec["components"]["headers"]
    assert {"ETag", "Location", "Retry-After", "Idempotent-Replayed", "X-Request-ID"} <= set(
        headers
    )
    operations = dict(_operations(spec))
    for name, operation in operations.items():
        for status, response in operation["responses"].items():
            sent = set(response.get("headers", {}))
            assert "X-Request-ID" in sent, f"{name} {status}"
            if status == "201":
                assert "Location" in sent, f"{name} {status}"
            if status in {"429", "503"}:
                assert "Retry-After" in sent, f"{name} {status}"
    for name in ("GET /v1/customers/{customer_id}", "PATCH /v1/managers/{manager_id}"):
        assert "ETag" in operations[name]["responses"]["200"]["headers"], name


def _examples(node, path=""):
    """(path, schema, example) for every example in the spec: a schema's ``examples`` and a
    media type's ``example`` (checked against the media type's schema)."""
    if isinstance(node, dict):
        if isinstance(node.get("examples"), list):
            schema = {k: v for k, v in node.items() if k not in {"examples", "example"}}
            for i, example in enumerate(node["examples"]):
                yield f"{path}/examples/{i}", schema, example
        if "example" in node and "schema" in node:
            yield f"{path}/example", node["schema"], node["example"]
        for key, value in node.items():
            if key not in {"examples", "example"}:
                yield from _examples(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _examples(value, f"{path}/{i}")


def test_every_example_validates_against_its_schema(spec):
    checked = 0
    failures = []
    for where, schema, example in _examples(spec):
        validator = jsonschema_rs.Draft202012Validator(
            {**schema, "components": spec["components"]}, validate_formats=True
        )
        failures += [f"{where}: {e.message}" for e in validator.iter_errors(example)]
        checked += 1
    assert checked > 50
    assert not failures, "\n".join(failures)
