"""The domain error tree and its single problem+json rendering (RFC 9457)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class BatonError(Exception):
    """Base of every error the service raises on purpose; rendered as problem+json."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 body of this error."""
        body: dict[str, Any] = {
            "type": f"https://baton.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        if self.status == 422 and "errors" not in body:
            body["errors"] = [{"loc": [], "msg": self.detail, "type": self.code}]
        if isinstance(body.get("errors"), list):
            # Every error names its type (the documented shape); the error's code by default.
            body["errors"] = [
                {**e, "type": e.get("type", self.code)} if isinstance(e, dict) else e
                for e in body["errors"]
            ]
        return body


class InvalidInput(BatonError):
    """Input that parses but is wrong; like every 422 it carries an ``errors`` list."""

    status = 422
    code = "invalid_input"
    title = "Invalid input"


class NotFound(BatonError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(BatonError):
    status = 409
    code = "conflict"
    title = "Conflict"


class RuleViolation(Conflict):
    """An assignment would break a hard rule (tier minimum level, status, capacity)."""

    code = "rule_violation"
    title = "Assignment rule violated"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "Invalid state transition"


class StaleVersion(BatonError):
    status = 412
    code = "stale_version"
    title = "Precondition failed"


class Unauthorized(BatonError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(BatonError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class PreconditionRequired(BatonError):
    """A conditional request was required (``If-Match``) and none was sent."""

    status = 428
    code = "precondition_required"
    title = "Precondition required"


class RateLimited(BatonError):
    """Too many requests for this API key; ``Retry-After`` says when to try again."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(retry_after)}


class IdempotencyInFlight(Conflict):
    """A request with the same Idempotency-Key is still being processed."""

    code = "idempotency_key_in_flight"
    title = "Request in progress"


class IdempotencyKeyReused(InvalidInput):
    """The Idempotency-Key was already used with a different request."""

    code = "idempotency_key_reused"
    title = "Idempotency-Key reused"


class UnsupportedMediaType(BatonError):
    """The request body's Content-Type is not one the route reads."""

    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or any ``application/*+json``, parameters aside."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def require_json_body(headers: Any, *, has_body: bool | None = None) -> None:
    """UnsupportedMediaType unless a request that carries a body says it is JSON (``has_body``
    is read from the headers unless given)."""
    if has_body is None:
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if has_body and not is_json_media_type(headers.get("content-type")):
        raise UnsupportedMediaType(
            "Send the body as JSON with `Content-Type: application/json`"
            + (f", not {headers['content-type'][:100]!r}." if "content-type" in headers else ".")
        )


class StatementTimeout(BatonError):
    """A database statement ran past the statement timeout and was cancelled."""

    status = 503
    code = "statement_timeout"
    title = "Request took too long"


class PlanOverBudget(BatonError):
    """The engine ran past its time budget (``BATON_ENGINE_BUDGET_S``) and was abandoned."""

    status = 503
    code = "plan_over_budget"
    title = "Plan took too long"


PROBLEM_CONTENT_TYPE = "application/problem+json"

PROBLEM_SCHEMA_NAME = "Problem"


class ProblemError(BaseModel):
    """One invalid value: where it is, what is wrong, and a machine-readable type."""

    loc: list[str | int] = Field(description="Where: `body`, `query`, … then field names.")
    msg: str
    type: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details) with Baton's extension fields.

    ``code`` is stable and machine-readable; the other extensions appear where they apply."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://baton.dev/problems/not_found",
                    "title": "Not found",
                    "status": 404,
                    "detail": "Customer 1b0c6a8e-5f0e-4d53-9d1e-3f4b3f0f3a11 not found.",
                    "code": "not_found",
                    "instance": "/v1/customers/1b0c6a8e-5f0e-4d53-9d1e-3f4b3f0f3a11",
                }
            ]
        },
    )

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The path of the request.")
    code: str | None = Field(default=None, description="Baton's stable error code.")
    errors: list[ProblemError] | None = Field(
        default=None, description="Every invalid value (on every 422)."
    )
    violations: list[dict[str, Any]] | None = Field(
        default=None, description="The hard rules a placement would break (409)."
    )
    changed: list[str] | None = Field(
        default=None, description="The inputs that changed since a plan was made (409)."
    )
    customer_count: int | None = Field(
        default=None, description="How many customers the refused change concerned."
    )


_PROBLEM_REF = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}

_DESCRIPTIONS = {
    400: "Bad request (e.g. a body that is not valid JSON)",
    401: "Missing or invalid API key",
    403: "The API key's role may not do this",
    404: "Not found",
    409: "Conflict with the current state",
    412: "The resource changed since it was read (If-Match)",
    413: "The request body is too large",
    415: "The body's Content-Type is not supported (JSON is)",
    422: "Invalid input",
    428: "If-Match is required",
    429: "Too many requests, or too many failed authentications (see Retry-After)",
    503: "Service unavailable",
}


def problem_responses(*statuses: int, validation: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses, so each route is honest.

    422 is included unless ``validation`` is false (a route that takes no input)."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}},
        }
        for status in sorted({*statuses, *((422,) if validation else ())})
    }
