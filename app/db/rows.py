"""Typed rows: repositories hand services frozen dataclasses, not mappings.

A row type names every column its query selects; building it from a row with another set of
columns fails at once (a column added to the query or the table must be added to the type).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import RowMapping

T = TypeVar("T")


def row_as(kind: Callable[..., T], row: RowMapping) -> T:
    """One row as ``kind`` (a frozen dataclass whose fields are the row's columns)."""
    columns: dict[str, Any] = {str(k): v for k, v in row.items()}
    return kind(**columns)


def rows_as(kind: Callable[..., T], rows: Iterable[RowMapping]) -> list[T]:
    """Every row as ``kind``."""
    return [row_as(kind, r) for r in rows]
