"""Keyset pagination: opaque cursors over a stable sort key, and the list envelope.

The query parameters that fill ``PageParams`` are read by ``app.api.pagination``."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from app.errors import InvalidInput

T = TypeVar("T")
R = TypeVar("R")

MAX_PAGE_SIZE = 500
"""The largest page a list serves (and the largest ``limit`` a client may ask for)."""


class Page(BaseModel, Generic[T]):
    """A page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = Field(None, description="Opaque; null on the last page.")


class PageParams(BaseModel):
    cursor: str | None = None
    limit: int


def encode_cursor(key: list[Any]) -> str:
    """An opaque cursor for the sort key of the last row of a page."""
    raw = json.dumps(key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> list[Any]:
    """The sort key inside ``cursor``, checked against ``types``; a bad cursor is a 422.

    ``uuid.UUID`` and ``datetime`` positions come back parsed (a naive time is UTC), so no
    caller parses or validates a cursor again."""
    error = InvalidInput(
        "The cursor is not valid; pass back a next_cursor unchanged.",
        errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "cursor_invalid"}],
    )
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeError) as exc:
        raise error from exc
    if not isinstance(key, list) or len(key) != len(types):
        raise error
    for position, (value, kind) in enumerate(zip(key, types, strict=True)):
        if kind is uuid.UUID or kind is datetime:
            if not isinstance(value, str) or "\x00" in value:
                raise error
            try:
                parsed: Any = (
                    uuid.UUID(value) if kind is uuid.UUID else datetime.fromisoformat(value)
                )
            except ValueError as exc:
                raise error from exc
            if isinstance(parsed, datetime) and parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            key[position] = parsed
        elif not isinstance(value, kind) or isinstance(value, bool):
            raise error
        elif isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise error  # beyond a bigint: never produced by a page, and Postgres cannot take it
        elif isinstance(value, str) and "\x00" in value:
            raise error
    return key


def cursor_key(cursor: str | None, types: tuple[type, ...]) -> list[Any] | None:
    """The sort key a page starts after (``decode_cursor``), or None for the first page."""
    return decode_cursor(cursor, types) if cursor else None


def cursor_value(cursor: str | None, kind: type) -> Any:
    """The one-column sort key a page starts after, or None for the first page."""
    key = cursor_key(cursor, (kind,))
    return None if key is None else key[0]


def keyset_page(
    rows: Sequence[R],
    *,
    limit: int,
    item: Callable[[R], T],
    key: Callable[[R], list[Any]],
) -> tuple[list[T], str | None]:
    """A page from the ``limit + 1`` rows a list read after its cursor: the first ``limit``
    rows as items, and the cursor of the last one's sort ``key`` when the extra row shows that
    more follow (None on the last page)."""
    items = [item(r) for r in rows[:limit]]
    next_cursor = encode_cursor(key(rows[limit - 1])) if len(rows) > limit else None
    return items, next_cursor
