"""Schemathesis hooks for the fuzz run (loaded through SCHEMATHESIS_HOOKS)."""

import os
from typing import Any

import schemathesis

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@schemathesis.serializer("text/csv", "application/x-ndjson")
def text_body(ctx: Any, value: Any) -> bytes:
    """Import bodies are text (CSV or NDJSON); send what was generated as UTF-8 text."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


@schemathesis.check
def no_write_succeeds(ctx: Any, response: Any, case: Any) -> None:
    """With a viewer key (``BATON_FUZZ_ROLE=viewer``), no request that changes something may
    succeed; open routes (inbound webhooks are checked by signature) are no exception."""
    if os.environ.get("BATON_FUZZ_ROLE") != "viewer" or case.method.upper() in SAFE_METHODS:
        return
    if 200 <= response.status_code < 300:
        raise AssertionError(
            f"A viewer's {case.method.upper()} {case.path} succeeded ({response.status_code})."
        )
