"""Schemathesis hooks for the fuzz run (loaded through SCHEMATHESIS_HOOKS)."""

from typing import Any

import schemathesis


@schemathesis.serializer("text/csv", "application/x-ndjson")
def text_body(ctx: Any, value: Any) -> bytes:
    """Import bodies are text (CSV or NDJSON); send what was generated as UTF-8 text."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")
