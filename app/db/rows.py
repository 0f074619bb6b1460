"""Typed rows: repositories hand services frozen dataclasses, not mappings.

A row type names every column its query selects; building it from a row with another set of
columns fails at once (a column added to the query or the table must be added to the type).
A field typed with a vocabulary enum (``app.vocabulary``) holds the enum member.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import RowMapping

T = TypeVar("T")


@functools.cache
def _enum_fields(kind: Callable[..., Any]) -> tuple[tuple[str, type[StrEnum]], ...]:
    if not dataclasses.is_dataclass(kind):
        return ()
    found = []
    for name, hint in typing.get_type_hints(kind).items():
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        for option in options:
            if isinstance(option, type) and issubclass(option, StrEnum):
                found.append((name, option))
    return tuple(found)


def row_as(kind: Callable[..., T], row: Mapping[str, Any] | RowMapping) -> T:
    """One row as ``kind`` (a frozen dataclass whose fields are the row's columns)."""
    columns: dict[str, Any] = {str(k): v for k, v in row.items()}
    for name, enum in _enum_fields(kind):
        if columns.get(name) is not None:
            columns[name] = enum(columns[name])
    return kind(**columns)


def rows_as(kind: Callable[..., T], rows: Iterable[RowMapping]) -> list[T]:
    """Every row as ``kind``."""
    return [row_as(kind, r) for r in rows]
