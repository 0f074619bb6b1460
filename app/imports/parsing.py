"""Streaming readers for CSV and NDJSON request bodies: records with their line numbers.

Hand-written because the body arrives as an async stream of byte chunks and neither ``csv``
nor ``json`` reads one: bytes are decoded incrementally, split into lines, and, for CSV, lines
are joined into whole records before ``csv.reader`` sees them. A record is whole when it holds
an even number of ``"`` characters (RFC 4180 doubles quotes inside quoted fields, so an odd
count means a quoted field runs on past the line end). Memory stays at one chunk plus one
record, whatever the body's size.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from app.errors import InvalidInput, UnsupportedMediaType

Format = Literal["csv", "ndjson"]

MAX_RECORD_CHARS = 1_000_000
_NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
MEDIA_TYPES: dict[Format, str] = {"csv": "text/csv", "ndjson": "application/x-ndjson"}
OCTET_STREAM = "application/octet-stream"

# The request body of an import in the spec: each media type a file (``format: binary``), so a
# generated client takes bytes; ``application/octet-stream`` last, with ``?format=``, is what
# a client that sends every file the same way (openapi-python-client) uses.
_FILE = {"type": "string", "format": "binary"}


def import_body(csv_example: str, ndjson_example: str) -> dict[str, Any]:
    """The ``openapi_extra`` of an import route: its request body in CSV, NDJSON or either
    as ``application/octet-stream`` with ``?format=``."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": _FILE, "example": csv_example},
                "application/x-ndjson": {"schema": _FILE, "example": ndjson_example},
                OCTET_STREAM: {"schema": _FILE},
            },
        }
    }


def format_of(content_type: str | None, declared: Format | None = None) -> Format:
    """CSV or NDJSON from a Content-Type header, or from ``declared`` (the ``format`` query
    parameter) for an ``application/octet-stream`` body, as generated clients send a file.
    415 for another media type; 422 when an octet stream does not say its format or the two
    disagree."""
    media, _, params = (content_type or "").partition(";")
    media = media.strip().lower()
    charset = next(
        (
            p.split("=", 1)[1].strip().strip('"').lower()
            for p in params.split(";")
            if p.strip().lower().startswith("charset=")
        ),
        "utf-8",
    )
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"Only UTF-8 bodies are accepted, not charset={charset}.")
    found: Format | None = (
        "csv" if media == "text/csv" else "ndjson" if media in _NDJSON_TYPES else None
    )
    if media == OCTET_STREAM and declared is None:
        raise _format_error(
            "an `application/octet-stream` body needs `?format=csv` or `?format=ndjson`"
        )
    if media == OCTET_STREAM:
        return declared  # type: ignore[return-value]
    if found is not None and declared not in (None, found):
        raise _format_error(f"the body is `{media}`, not `{declared}`: send one or the other")
    if found is not None:
        return found
    raise UnsupportedMediaType(
        "Send the rows as `Content-Type: text/csv` (a header row, then one row per record), "
        "`application/x-ndjson` (one JSON object per line), or `application/octet-stream` "
        "with `?format=csv|ndjson`."
        + (f" Got `{media}`." if media else " No Content-Type was sent.")
    )


def _format_error(msg: str) -> InvalidInput:
    """422 about the ``format`` query parameter (the media type itself is supported)."""
    return InvalidInput(
        msg[0].upper() + msg[1:] + ".",
        errors=[{"loc": ["query", "format"], "msg": msg, "type": "value_error"}],
    )


def _file_error(line: int, msg: str) -> InvalidInput:
    return InvalidInput(
        f"line {line}: {msg}", errors=[{"loc": ["body", line], "msg": msg, "type": "file"}]
    )


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, str]]:
    """(line number from 1, text without the line break) for each line of a UTF-8 stream."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    number = 0
    first = True
    async for chunk in chunks:
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError:
            raise _file_error(number + 1, "the body is not valid UTF-8") from None
        if first and text:
            text = text.removeprefix("\ufeff")
            first = False
        buffer += text
        if "\n" not in buffer:
            if len(buffer) > MAX_RECORD_CHARS:
                raise _file_error(number + 1, f"a line is longer than {MAX_RECORD_CHARS} chars")
            continue
        *complete, buffer = buffer.split("\n")
        for line in complete:
            number += 1
            yield number, line.removesuffix("\r")
    try:
        buffer += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise _file_error(number + 1, "the body is not valid UTF-8") from None
    if buffer:
        yield number + 1, buffer.removesuffix("\r")


@dataclass(frozen=True)
class Record:
    """One row of the file: its line number and its fields (None when it did not parse)."""

    line: int
    fields: dict[str, Any] | None
    error: str | None = None


async def read_ndjson(chunks: AsyncIterator[bytes]) -> AsyncIterator[Record]:
    """One record per non-blank line; a line that is not a JSON object is a row error."""
    async for number, line in _lines(chunks):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:  # also an integer past Python's digit limit, not only bad JSON
            yield Record(number, None, f"not valid JSON: {getattr(exc, 'msg', exc)}")
            continue
        if not isinstance(value, dict):
            yield Record(number, None, "each line must be a JSON object")
            continue
        yield Record(number, value)


async def _csv_records(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, str]]:
    """Whole CSV records (which may span lines) with the line each starts on."""
    pending: list[str] = []
    start = 0
    quotes = 0
    async for number, line in _lines(chunks):
        if not pending:
            start = number
        pending.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            yield start, "\n".join(pending)
            pending, quotes = [], 0
        elif sum(len(p) for p in pending) > MAX_RECORD_CHARS:
            raise _file_error(start, "a quoted field is never closed")
    if pending:
        raise _file_error(start, "a quoted field is never closed")


async def read_csv(
    chunks: AsyncIterator[bytes], *, columns: frozenset[str], required: frozenset[str]
) -> AsyncIterator[Record]:
    """Records keyed by the header row; unknown, duplicate or missing columns fail the file.

    Empty cells are left out of the record, so the field keeps its default (or, on update, its
    current value); see ``blank_means_null`` for the fields where an empty cell clears it.
    """
    header: list[str] | None = None
    async for number, text in _csv_records(chunks):
        if not text.strip():
            continue
        try:
            row = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            if header is None:
                raise _file_error(number, f"the header row does not parse: {exc}") from None
            yield Record(number, None, f"not valid CSV: {exc}")
            continue
        if header is None:
            header = [c.strip() for c in row]
            _check_header(header, columns=columns, required=required)
            continue
        if len(row) != len(header):
            yield Record(number, None, f"{len(row)} cells but the header has {len(header)}")
            continue
        yield Record(number, {k: v for k, v in zip(header, row, strict=True)})
    if header is None:
        raise _file_error(1, "a CSV import needs a header row naming the columns")


def _check_header(header: list[str], *, columns: frozenset[str], required: frozenset[str]) -> None:
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, name in enumerate(header):
        if name in seen:
            errors.append({"loc": ["header", i], "msg": f"duplicate column '{name}'"})
        elif name not in columns:
            errors.append({"loc": ["header", i], "msg": f"unknown column '{name}'"})
        seen.add(name)
    for name in sorted(required - seen):
        errors.append({"loc": ["header"], "msg": f"missing column '{name}'"})
    if errors:
        for e in errors:
            e["type"] = "header"
        raise InvalidInput(
            "line 1: the header row is wrong: "
            + "; ".join(e["msg"] for e in errors)
            + f". Known columns: {', '.join(sorted(columns))}.",
            errors=errors,
        )
