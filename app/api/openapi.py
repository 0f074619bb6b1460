"""The OpenAPI document, shaped for client generators.

- ``operationId`` is the endpoint function's name in camelCase (``list_customers`` →
  ``listCustomers``), set for every route in one place (``operation_id``);
- every error response references one ``Problem`` component (``app.errors.Problem``);
- an optional action body is an optional object, not "an object or null";
- the response headers Baton sends are documented once under ``components.headers`` and
  referenced where they are sent: ``X-Request-ID`` on every response, ``Location`` on every
  201, ``Retry-After`` on 429 and 503, ``Idempotent-Replayed`` on the successes of a POST
  (``ETag`` is declared by the routes that set it, ``app.api.concurrency.ETAG_RESPONSE``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from app.api.auth import SECURITY_SCHEMES
from app.errors import PROBLEM_SCHEMA_NAME, Problem

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id (the client's `X-Request-ID` when valid, else a new "
        "one); it is on every log line and event the request causes.",
        "schema": {"type": "string"},
    },
    "Location": {
        "description": "The URL of the created resource.",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored response of an earlier request with "
        "the same `Idempotency-Key`.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "ETag": {
        "description": 'The resource\'s version (`"3"`), for `If-Match` on changes.',
        "schema": {"type": "string"},
    },
}

_METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


def operation_id(route: APIRoute) -> str:
    """The route's endpoint name in camelCase: ``plan_handover`` → ``planHandover``."""
    first, *rest = route.name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def header_ref(name: str) -> dict[str, str]:
    """A reference to one of the documented response headers."""
    return {"$ref": f"#/components/headers/{name}"}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (cached on the app like FastAPI's own)."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas[PROBLEM_SCHEMA_NAME] = problem
    for schema in schemas.values():
        _restore_null_fields(schema)
    components["schemas"] = dict(sorted(_referenced(spec, schemas).items()))
    components["headers"] = HEADERS
    components["securitySchemes"] = SECURITY_SCHEMES
    for item in spec.get("paths", {}).values():
        for method, operation in item.items():
            if method in _METHODS:
                _document_headers(method, operation)
                _drop_null_from_optional_body(operation)
    app.openapi_schema = spec
    return spec


def _referenced(spec: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The component schemas something refers to. FastAPI also emits a component for every
    enum class a field is annotated with, even when the field's schema is written inline
    (``app.core.schemas.one_of``); nothing refers to those."""
    prefix = "#/components/schemas/"
    seen: set[str] = set()
    todo = [{k: v for k, v in spec.items() if k != "components"}]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] not in seen:
                seen.add(ref[len(prefix) :])
                todo.append(schemas.get(ref[len(prefix) :], {}))
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return {name: schema for name, schema in schemas.items() if name in seen}


def _restore_null_fields(schema: dict[str, Any]) -> None:
    """Put back the ``null`` values of a schema's examples. FastAPI renders the document with
    ``exclude_none``, which drops them, so an example of a response (where every field is
    present, nullable or not) would no longer validate against its own schema."""
    properties = schema.get("properties", {})
    for example in schema.get("examples", []):
        if not isinstance(example, dict):
            continue
        for name in schema.get("required", []):
            if name not in example and _admits_null(properties.get(name, {})):
                example[name] = None


def _admits_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(
        option.get("type") == "null" for option in schema.get("anyOf", [])
    )


def _drop_null_from_optional_body(operation: dict[str, Any]) -> None:
    """An optional body (``X | None = None``) is rendered as ``anyOf: [X, null]``, which
    generators turn into an argument that must be passed and may be ``None``; stated as
    plain ``X`` in a body that is not required, the argument can simply be left out."""
    body = operation.get("requestBody")
    if body is None or body.get("required"):
        return
    for media in body.get("content", {}).values():
        options = media.get("schema", {}).get("anyOf", [])
        rest = [option for option in options if option != {"type": "null"}]
        if len(options) == 2 and len(rest) == 1:
            media["schema"] = rest[0]


def _document_headers(method: str, operation: dict[str, Any]) -> None:
    for status, response in operation.get("responses", {}).items():
        headers = response.setdefault("headers", {})
        headers["X-Request-ID"] = header_ref("X-Request-ID")
        if status == "201":
            headers["Location"] = header_ref("Location")
        if status in {"429", "503"}:
            headers["Retry-After"] = header_ref("Retry-After")
        if method == "post" and status.startswith("2"):
            headers["Idempotent-Replayed"] = header_ref("Idempotent-Replayed")
